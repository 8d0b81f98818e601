//! Which registries a digest is known from, for pull credentials: content is addressed by
//! digest and shared across upstreams, so a digest that only private upstreams served must not
//! be handed out under an open upstream's name.
//!
//! It is asked for every anonymous request by digest where private upstreams exist, so it is
//! answered from a reverse map kept beside the index ([`NamedBy`]), not a scan of every
//! manifest. The map is built by the first question and kept from then on: a server without
//! private upstreams never asks, and does not pay its memory (14 MB for the 10,000 manifests
//! of the bench's start-up measure).

use std::collections::{BTreeSet, HashMap};

use actix::prelude::*;

use super::{IndexEntry, ManifestIndex};
use crate::oci::{Descriptor, Digest};

/// The cached manifests that name each digest (a list its image manifests, an image manifest
/// its config and layers), once asked for. Changed in the same turn as the index's manifests.
#[derive(Debug, Default)]
pub(super) struct NamedBy(Option<HashMap<Digest, Vec<Digest>>>);

impl NamedBy {
    /// `parent` entered the index, naming `children`.
    pub(super) fn add(&mut self, parent: &Digest, children: &[Descriptor]) {
        if let Some(map) = &mut self.0 {
            Self::add_to(map, parent, children);
        }
    }

    fn add_to(map: &mut HashMap<Digest, Vec<Digest>>, parent: &Digest, children: &[Descriptor]) {
        for c in children {
            let parents = map.entry(c.digest.clone()).or_default();
            if !parents.contains(parent) {
                parents.push(parent.clone());
            }
        }
    }

    /// `parent`, which named `children`, left the index.
    pub(super) fn remove(&mut self, parent: &Digest, children: &[Descriptor]) {
        let Some(map) = &mut self.0 else {
            return;
        };
        for c in children {
            if let Some(parents) = map.get_mut(&c.digest) {
                parents.retain(|p| p != parent);
                if parents.is_empty() {
                    map.remove(&c.digest);
                }
            }
        }
    }

    /// The map, built from `manifests` the first time.
    fn built<'a>(
        &mut self,
        manifests: impl Iterator<Item = &'a IndexEntry>,
    ) -> &HashMap<Digest, Vec<Digest>> {
        self.0.get_or_insert_with(|| {
            let mut map = HashMap::new();
            for e in manifests {
                Self::add_to(&mut map, &e.manifest.digest, &e.manifest.manifest.children);
            }
            map
        })
    }
}

/// The registries a digest is known from: those of every cached manifest that is it or names it
/// (a child manifest, a config, a layer), by where it was first pulled and by its tags, and of
/// every list that names such a manifest (an image manifest first pulled through a private
/// registry's list is still reached through an open one's tag of the same list).
#[derive(Message)]
#[rtype(result = "BTreeSet<String>")]
pub struct Sources {
    pub digest: Digest,
}

impl Handler<Sources> for ManifestIndex {
    type Result = MessageResult<Sources>;

    fn handle(&mut self, msg: Sources, _: &mut Context<Self>) -> Self::Result {
        let own = |e: &IndexEntry| -> Vec<String> {
            std::iter::once(&e.manifest.image_url)
                .chain(e.tags.iter())
                .filter_map(|u| u.split_once('/'))
                .map(|(r, _)| r.to_string())
                .collect()
        };
        let named_by = self.named_by.built(self.by_digest.values());
        let parents = |d: &Digest| named_by.get(d).map_or(&[][..], Vec::as_slice);
        let holding: Vec<&IndexEntry> = std::iter::once(&msg.digest)
            .chain(parents(&msg.digest))
            .filter_map(|d| self.by_digest.get(d))
            .collect();
        let mut registries: BTreeSet<String> = holding.iter().flat_map(|e| own(e)).collect();
        for e in &holding {
            let lists = parents(&e.manifest.digest)
                .iter()
                .filter_map(|d| self.by_digest.get(d))
                .filter(|l| l.manifest.kind().is_list());
            for list in lists {
                registries.extend(own(list));
            }
        }
        MessageResult(registries)
    }
}
