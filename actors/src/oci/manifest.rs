//! Manifest media types and the little of a manifest's content the cache needs: which blobs an
//! image manifest names, and which image manifests a list names, for which platforms.
//!
//! Manifests are always served as the exact upstream bytes (re-serialising would change the
//! digest); parsing here only reads them.

use serde::Deserialize;

use super::{Digest, OciError};

pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Sent upstream on every manifest request: distribution answers 404 for an OCI index, and
/// downgrades a Docker list to schema1, when its type is missing from `Accept`.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// The largest manifest we accept from an upstream (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The four manifest types, numbered as the Go server's ManifestHolder `type` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    DockerList = 0,
    DockerManifest = 1,
    OciIndex = 2,
    OciManifest = 3,
}

impl ManifestKind {
    pub const ALL: [ManifestKind; 4] = [
        ManifestKind::DockerList,
        ManifestKind::DockerManifest,
        ManifestKind::OciIndex,
        ManifestKind::OciManifest,
    ];

    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::DockerList => DOCKER_MANIFEST_LIST,
            ManifestKind::DockerManifest => DOCKER_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::OciManifest => OCI_MANIFEST,
        }
    }

    /// The kind for a media type; parameters (`; charset=...`) and case are ignored.
    pub fn from_media_type(mt: &str) -> Option<Self> {
        let essence = mt.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|k| k.media_type().eq_ignore_ascii_case(essence))
    }

    /// The number the Go server stores in a ManifestHolder's `type` field.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    pub fn is_list(self) -> bool {
        matches!(self, ManifestKind::DockerList | ManifestKind::OciIndex)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A pointer to content: a blob of an image, or an image manifest of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// The size to hold a download of this content to. `None` for 0: a manifest that leaves
    /// the size out parses as 0 too, and such manifests exist, so a 0 bounds nothing (the
    /// digest check still stands).
    pub fn stated_size(&self) -> Option<u64> {
        (self.size > 0).then_some(self.size)
    }
}

/// A parsed manifest: its kind, and what it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub kind: ManifestKind,
    /// Image manifests: config first, then layers. Lists: the image manifests.
    pub children: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    size: u64,
    platform: Option<Platform>,
}

impl Manifest {
    /// Parses `bytes`; the kind comes from the body's `mediaType`, else from the `Content-Type`
    /// the upstream sent, else from the body's shape (OCI allows omitting `mediaType`).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, OciError> {
        let raw: RawManifest = serde_json::from_slice(bytes)
            .map_err(|e| OciError::ManifestInvalid(format!("not a manifest: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(OciError::ManifestInvalid(format!(
                "schemaVersion {:?} is not supported (only 2)",
                raw.schema_version
            )));
        }
        let kind = raw
            .media_type
            .as_deref()
            .and_then(ManifestKind::from_media_type)
            .or_else(|| content_type.and_then(ManifestKind::from_media_type))
            .or(if raw.manifests.is_some() {
                Some(ManifestKind::OciIndex)
            } else if raw.config.is_some() {
                Some(ManifestKind::OciManifest)
            } else {
                None
            })
            .ok_or_else(|| {
                OciError::ManifestInvalid(format!(
                    "unsupported manifest media type {:?}",
                    raw.media_type.as_deref().or(content_type).unwrap_or("")
                ))
            })?;
        let convert = |d: RawDescriptor| -> Result<Descriptor, OciError> {
            Ok(Descriptor {
                media_type: d.media_type,
                digest: Digest::parse(&d.digest)
                    .map_err(|e| OciError::ManifestInvalid(e.to_string()))?,
                size: d.size,
                platform: d.platform,
            })
        };
        let children = if kind.is_list() {
            let list = raw.manifests.ok_or_else(|| {
                OciError::ManifestInvalid("manifest list without \"manifests\"".into())
            })?;
            list.into_iter().map(convert).collect::<Result<_, _>>()?
        } else {
            let config = raw
                .config
                .ok_or_else(|| OciError::ManifestInvalid("image manifest without config".into()))?;
            std::iter::once(config)
                .chain(raw.layers.unwrap_or_default())
                .map(convert)
                .collect::<Result<_, _>>()?
        };
        Ok(Manifest { kind, children })
    }
}

/// All media types in a request's `Accept` headers, parameters dropped, in the case the
/// client sent them (media types compare without case): c/image clients send one header per
/// type, containerd one comma-separated header; both mean the same list. Borrowed, not
/// collected: every manifest hit reads it.
pub fn accepted_types<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> impl Iterator<Item = &'a str> {
    headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest_lists_config_then_layers() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":3}},
               "layers":[{{"digest":"{}","size":10}},{{"digest":"{}","size":20}}]}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let m = Manifest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        let sizes: Vec<u64> = m.children.iter().map(|c| c.size).collect();
        assert_eq!(sizes, [3, 10, 20]);
    }

    #[test]
    fn a_descriptor_without_a_size_states_none() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}"}},
               "layers":[{{"digest":"{}","size":0}},{{"digest":"{}","size":20}}]}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let m = Manifest::parse(body.as_bytes(), None).unwrap();
        let stated: Vec<Option<u64>> = m.children.iter().map(|c| c.stated_size()).collect();
        assert_eq!(stated, [None, None, Some(20)]);
    }

    #[test]
    fn list_kind_comes_from_content_type_when_body_has_no_media_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}","size":5,
               "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
            d('a')
        );
        let m = Manifest::parse(body.as_bytes(), Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerList);
        assert_eq!(
            m.children[0].platform.as_ref().unwrap().variant.as_deref(),
            Some("v8")
        );
    }

    #[test]
    fn schema1_garbage_and_bad_child_digests_are_manifest_invalid() {
        for body in [
            r#"{"schemaVersion":1,"fsLayers":[]}"#.to_string(),
            "not json".to_string(),
            r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:zz","size":1}]}"#.to_string(),
            r#"{"schemaVersion":2,"mediaType":"application/x-other"}"#.to_string(),
        ] {
            assert!(matches!(
                Manifest::parse(body.as_bytes(), None),
                Err(OciError::ManifestInvalid(_))
            ));
        }
    }

    #[test]
    fn accepted_types_span_headers_and_comma_lists_without_parameters() {
        let types: Vec<&str> = accepted_types([
            "application/vnd.oci.image.index.v1+json",
            "Application/Vnd.Docker.Distribution.Manifest.V2+Json, */*;q=0.8",
            " , ;q=1",
        ])
        .collect();
        assert_eq!(
            types,
            [
                OCI_INDEX,
                "Application/Vnd.Docker.Distribution.Manifest.V2+Json",
                "*/*"
            ]
        );
    }

    #[test]
    fn go_type_numbers_match_media_types() {
        for t in 0..4u8 {
            let k = ManifestKind::from_code(t).unwrap();
            assert_eq!(k.code(), t);
            assert_eq!(ManifestKind::from_media_type(k.media_type()), Some(k));
        }
        assert_eq!(ManifestKind::from_code(4), None);
    }
}
