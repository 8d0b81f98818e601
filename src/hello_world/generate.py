#!/usr/bin/env python3
"""Regenerates the embedded hello-world image served by `serve --hello-world`.

Writes, next to this script, a multi-platform OCI image index for linux/amd64 and linux/arm64
whose image manifests each have one config and one layer. A layer is a gzip'd tar holding one
file, `/hello`, a text file naming its platform. Output is deterministic (fixed times, owners
and modes), so running it again reproduces the committed files as long as zlib compresses the
same way. The Rust unit tests in `src/hello_world.rs` check that the committed files agree
with each other (digests, sizes, diff_ids, tar content), whatever produced them.

Usage: python3 src/hello_world/generate.py
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
PLATFORMS = [("linux", "amd64"), ("linux", "arm64")]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_for(os_name: str, arch: str) -> tuple[bytes, bytes]:
    text = (
        "Hello from ociregistry!\n"
        f"This is docker.io/library/hello-world:latest for {os_name}/{arch},\n"
        "served from the cache with no network at all.\n"
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("hello")
        info.size = len(text)
        info.mtime = 0
        info.mode = 0o755
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(text))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0)


def write(name: str, data: bytes) -> None:
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main() -> None:
    entries = []
    for os_name, arch in PLATFORMS:
        raw, gz = layer_for(os_name, arch)
        config = canonical(
            {
                "architecture": arch,
                "os": os_name,
                "created": "1970-01-01T00:00:00Z",
                "config": {"Cmd": ["/hello"]},
                "rootfs": {"type": "layers", "diff_ids": [sha(raw)]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "generate.py"}],
            }
        )
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha(gz),
                        "size": len(gz),
                    }
                ],
            }
        )
        write(f"layer-{arch}.tar.gz", gz)
        write(f"config-{arch}.json", config)
        write(f"manifest-{arch}.json", manifest)
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(manifest),
                "size": len(manifest),
                "platform": {"architecture": arch, "os": os_name},
            }
        )
    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }
    )
    write("index.json", index)
    print(f"index {sha(index)}")


if __name__ == "__main__":
    main()
