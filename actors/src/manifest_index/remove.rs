//! Taking manifests out of the index: removed by this process ([`Remove`], which deletes them
//! from the store too), or found removed by another replica of a shared store
//! ([`Forget`]).

use actix::prelude::*;

use super::ManifestIndex;
use crate::error::EngineError;
use crate::oci::Digest;

/// A manifest [`Remove`] took out of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub digest: Digest,
    pub url: String,
    pub is_list: bool,
    /// An image manifest: the blobs it named (to release in the blob table). A list: empty.
    pub blobs: Vec<Digest>,
}

/// Removes manifests from the index, their tags with them, and deletes their files. The
/// deletions are queued behind the index's earlier writes and ahead of later ones, so a fetch
/// that re-inserts the same manifest right after has its new file written after this removal,
/// never deleted by it. Digests not in the index are skipped.
#[derive(Message)]
#[rtype(result = "Result<Vec<Removed>, EngineError>")]
pub struct Remove {
    pub digests: Vec<Digest>,
}

impl Handler<Remove> for ManifestIndex {
    type Result = ResponseFuture<Result<Vec<Removed>, EngineError>>;

    fn handle(&mut self, msg: Remove, _: &mut Context<Self>) -> Self::Result {
        let out = self.take_out(msg.digests);
        let digests: Vec<Digest> = out.iter().map(|r| r.digest.clone()).collect();
        let deleted = self.queued(|store| {
            Box::pin(async move {
                for d in digests {
                    store.remove_manifest(d).await?;
                }
                Ok(())
            })
        });
        Box::pin(async move {
            deleted.await?;
            Ok(out)
        })
    }
}

/// Manifests another replica of a shared store removed (a prune there): out of the index and
/// its snapshot, so they are no longer served and their `pulled` times are never written back
/// (which would bring them back into the store). Nothing is deleted: the store has done it.
/// Answers what was taken out, for the blob table's counts.
#[derive(Message)]
#[rtype(result = "Vec<Removed>")]
pub struct Forget {
    pub digests: Vec<Digest>,
}

impl Handler<Forget> for ManifestIndex {
    type Result = MessageResult<Forget>;

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.take_out(msg.digests))
    }
}

impl ManifestIndex {
    /// Takes `digests` out of the index, their tags with them, and publishes the change; the
    /// ones not in the index are skipped.
    fn take_out(&mut self, digests: Vec<Digest>) -> Vec<Removed> {
        let mut out = Vec::new();
        let mut untagged = Vec::new();
        for digest in digests {
            let Some(entry) = self.by_digest.remove(&digest) else {
                continue;
            };
            self.named_by
                .remove(&digest, &entry.manifest.manifest.children);
            for t in &entry.tags {
                if self.by_tag.get(t) == Some(&digest) {
                    self.by_tag.remove(t);
                    untagged.push(t.clone());
                }
            }
            self.dirty.remove(&digest);
            let is_list = entry.manifest.kind().is_list();
            out.push(Removed {
                digest,
                url: entry.manifest.image_url.clone(),
                is_list,
                blobs: if is_list {
                    Vec::new()
                } else {
                    entry.child_digests()
                },
            });
        }
        let digests: Vec<Digest> = out.iter().map(|r| r.digest.clone()).collect();
        self.republish(&untagged, &digests);
        out
    }
}
