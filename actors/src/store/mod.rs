//! The on-disk cache, shared with the Go `ociregistry` server.
//!
//! # Layout
//!
//! Everything lives under one root directory (`--image-path`, `/var/lib/ociregistry` by
//! default):
//!
//! ```text
//! <root>/blobs/<hex>   raw blobs (layers, configs), named by their sha256 hex
//! <root>/fat/<hex>     manifest lists / image indexes        (Go 1.8 layout)
//! <root>/img/<hex>     image manifests (1.8); every non-`latest` manifest (1.9+)
//! <root>/lts/<hex>     manifests pulled by the tag `latest`   (Go 1.9+ layout)
//! <root>/tmp/          our temp files; never content, emptied when the store opens
//! ```
//!
//! Manifest files are named by the bare sha256 hex of the manifest bytes and contain one
//! JSON `ManifestHolder` each.
//!
//! ## What the Go server does (as read from its sources)
//!
//! * **1.8** files a manifest by kind: lists and indexes in `fat/`, image manifests in
//!   `img/`. It loads by walking `fat/` then `img/`.
//! * **1.9 and later** no longer use `fat/`. The directory is chosen by whether the image
//!   URL's tag is `latest` (compared case-insensitively): such manifests go to `lts/`,
//!   everything else, lists and image manifests alike, to `img/`. It loads by walking
//!   `lts/` then `img/`, and creates `lts/`, `img/` and `blobs/` at start. `latest` is
//!   kept apart because the server can be told to always re-pull `latest`; a re-pulled
//!   manifest with a new digest replaces the old file (and its unshared blobs).
//! * Both versions write with a plain create-and-write (no temp file, no fsync) and take a
//!   blob listing from every name in `blobs/`, so nothing but finished blobs may ever be put
//!   there. Older Go versions staged downloads in `pulls/`; we stage in `tmp/`.
//!
//! We read all three manifest directories. We write lists to `fat/` and image manifests to
//! `img/` (the 1.8 layout, which the 1.8 server reads back), except that a manifest whose
//! file already exists in another of the directories is rewritten where it is, so a cache
//! written by a 1.9+ server keeps its shape when we update `pulled` or tags. A 1.9+ Go
//! server does not look in `fat/`, so lists we added are invisible to it.
//!
//! ## The ManifestHolder JSON
//!
//! | key | content |
//! | --- | --- |
//! | `type` | 0 Docker manifest list, 1 Docker image manifest, 2 OCI index, 3 OCI image manifest (Go also has 4, "undefined", which never reaches disk) |
//! | `digest` | the manifest digest as bare hex, no `sha256:` prefix (it is also the file name); we accept a prefixed value on read |
//! | `imageUrl` | the reference the manifest was pulled by, with its registry: `registry.k8s.io/pause:3.8` by tag, `registry.k8s.io/pause@sha256:<hex>` by digest |
//! | `bytes` | base64 (standard alphabet, padded: Go's encoding of `[]byte`) of the exact upstream manifest; omitted when empty |
//! | `v1.oci.index`, `v1.oci.manifest`, `v2.docker.manifestList`, `v2.docker.manifest` | the manifest decoded into Go structs. Go writes all four, the three that do not apply as zero values; we write only the one for `type` and keep it as untyped JSON |
//! | `created`, `pulled` | local wall-clock time `YYYY-MM-DDTHH:MM:SS` (Go layout `2006-01-02T15:04:05`); `created` is set on first pull, `pulled` on every cache hit. Files from before 1.8 lack both |
//! | `tags` | ours: every tag known to point at the manifest. Go's decoder ignores it; for files without it the tag in `imageUrl` (if any) is used |
//!
//! A holder without `bytes` cannot be served byte-exactly; [`Store::load_manifests`] skips
//! it and reports why. So it does for a file whose bytes do not hash to its name.
//!
//! ## Durability
//!
//! Blobs stream into `tmp/` while being hashed ([`BlobWriter`]); only a verified, fsynced
//! file is renamed into `blobs/`, and the directory is fsynced after. Manifests are written
//! the same way (temp file, fsync, rename, directory fsync). A crash leaves either the old
//! file or the new one, and at worst stray temp files, which [`Store::open`] deletes.
//!
//! The synchronous functions use blocking `std::fs`: call them off the async threads.

mod holder;

pub use holder::{
    format_time, now_local, parse_time, tag_of_image_url, to_local, ManifestHolder, ManifestKind,
};
