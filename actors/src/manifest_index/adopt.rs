//! What other replicas of a shared store wrote: adopted into this replica's index.

use actix::prelude::*;

use super::{entry_from_holder, ManifestIndex};
use crate::oci::Digest;
use crate::store::ManifestHolder;

/// Manifests another replica of a shared store wrote or changed: new ones are added, and a
/// tag a holder names moves to it when the holder checked it upstream later than the manifest
/// the tag points at here was (a replica rewriting an older manifest, for its `pulled` time,
/// must not move a tag back). A manifest known here takes the later `pulled` time and the
/// earlier `created` time of the two. A tag no holder claims stays where it is. Answers the image
/// manifests that are new here, with the blobs they name, for the blob table's counts.
/// Nothing is written back: the store has them already.
#[derive(Message)]
#[rtype(result = "Vec<(Digest, Vec<crate::blob::NamedBlob>)>")]
pub struct Adopt {
    pub holders: Vec<ManifestHolder>,
    /// Tags go where the holders put them whatever the check times: the holders are this
    /// cache's own files, just written by an import beside the running server.
    pub tags_as_stored: bool,
}

impl Handler<Adopt> for ManifestIndex {
    type Result = MessageResult<Adopt>;

    fn handle(&mut self, msg: Adopt, _: &mut Context<Self>) -> Self::Result {
        let mut new_images = Vec::new();
        let (mut touched_tags, mut touched_digests) = (Vec::new(), Vec::new());
        for h in msg.holders {
            let mut entry = match entry_from_holder(&h) {
                Ok(e) => e,
                Err(e) => {
                    log::warn!("shared store: skipping manifest {}: {e}", h.image_url());
                    continue;
                }
            };
            let digest = entry.manifest.digest.clone();
            let tags = std::mem::take(&mut entry.tags);
            let their_checks = std::mem::take(&mut entry.checked);
            if let Some(known) = self.by_digest.get_mut(&digest) {
                // Another replica served it: a prune by access time, or an eviction, on any
                // replica sees the fleet's latest pull.
                known.pulled = known.pulled.max(entry.pulled);
                known.created = known.created.min(entry.created);
            } else {
                if !entry.manifest.kind().is_list() {
                    new_images.push((digest.clone(), entry.manifest.named_blobs()));
                }
                crate::metrics::metrics().cached_manifests.inc();
                self.named_by
                    .add(&digest, &entry.manifest.manifest.children);
                self.by_digest.insert(digest.clone(), entry);
                touched_digests.push(digest.clone());
            }
            for t in tags {
                let theirs = their_checks.get(&t).copied();
                if let Some(old) = self.by_tag.get(&t).filter(|d| **d != digest).cloned() {
                    let ours = self.by_digest.get(&old).and_then(|o| o.checked.get(&t));
                    let later = ours.is_some_and(|o| theirs.is_none_or(|t| *o >= t));
                    if later && !msg.tags_as_stored {
                        continue;
                    }
                    if let Some(o) = self.by_digest.get_mut(&old) {
                        o.tags.remove(&t);
                        o.checked.remove(&t);
                    }
                }
                self.by_tag.insert(t.clone(), digest.clone());
                touched_tags.push(t.clone());
                if let Some(e) = self.by_digest.get_mut(&digest) {
                    if let Some(theirs) = theirs {
                        let at = e.checked.entry(t.clone()).or_insert(theirs);
                        *at = (*at).max(theirs);
                    }
                    e.tags.insert(t);
                }
            }
        }
        // Hits read the snapshot: what was adopted is served from this turn on.
        self.republish(&touched_tags, &touched_digests);
        MessageResult(new_images)
    }
}
