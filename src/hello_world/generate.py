#!/usr/bin/env python3
"""Regenerates the embedded hello-world image served by `serve --hello-world`.

Writes, next to this script, a multi-platform OCI image index for linux/amd64 and linux/arm64
whose image manifests each have one config and one layer. A layer is a gzip'd tar holding one
file, `/hello`: `hello.c` compiled for its platform as a static program without a C library
(a few hundred bytes) that prints a greeting and exits 0; the config runs it. Debian's `gcc`
and `gcc-aarch64-linux-gnu` build them (apt-get install gcc gcc-aarch64-linux-gnu). Output is
deterministic (fixed times, owners and modes; no build id, stripped), so running it again with
the same compilers reproduces the committed files as long as zlib compresses the same way. The
Rust unit tests in `src/hello_world.rs` check that the committed files agree with each other
(digests, sizes, diff_ids, tar content, ELF machine), whatever produced them.

Usage: python3 src/hello_world/generate.py
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PLATFORMS = [("linux", "amd64"), ("linux", "arm64")]
COMPILERS = {"amd64": "gcc", "arm64": "aarch64-linux-gnu-gcc"}
# No C library, no start files, no position independence, nothing that varies between builds.
CFLAGS = [
    "-static",
    "-nostdlib",
    "-Os",
    "-fno-pie",
    "-no-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fno-ident",
    "-Wl,--build-id=none",
    "-Wl,-z,noexecstack",
    "-Wl,-z,max-page-size=4096",
    "-Wl,-z,noseparate-code",
    "-s",
]


def program_for(os_name: str, arch: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "hello")
        subprocess.run(
            [COMPILERS[arch], *CFLAGS, f'-DPLATFORM="{os_name}/{arch}"', "-o", out, "hello.c"],
            cwd=HERE,
            check=True,
        )
        with open(out, "rb") as f:
            return f.read()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_for(os_name: str, arch: str) -> tuple[bytes, bytes]:
    text = program_for(os_name, arch)
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
