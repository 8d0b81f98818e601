#!/usr/bin/env python3
"""Write a multi-platform OCI image layout with random layers, offline.

Usage:
    gen_image.py --out DIR --tag TAG --layers SIZE[,SIZE...]
                 [--platforms linux/amd64,linux/arm64] [--seed N]

Each layer is a valid gzip-compressed tar archive holding one file of SIZE
bytes of random data (suffixes K and M are accepted), so that clients which
unpack images (containerd, podman, Docker) accept it. Every platform gets its
own layers, an image config whose rootfs.diff_ids match the uncompressed
layers, and an image manifest; an OCI image index ties them together and is
recorded in index.json under the given tag.

Prints one JSON object on stdout describing every digest written:
    {"index": {"digest", "size"},
     "platforms": [{"os", "architecture", "manifest", "config",
                    "layers": [{"digest", "size", "diff_id"}]}]}
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

CREATED = "2024-01-01T00:00:00Z"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def parse_size(text):
    text = text.strip().upper()
    factor = 1
    if text.endswith("K"):
        factor, text = 1024, text[:-1]
    elif text.endswith("M"):
        factor, text = 1024 * 1024, text[:-1]
    return int(float(text) * factor)


class Layout:
    def __init__(self, root):
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blob_dir, exist_ok=True)

    def add(self, data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blob_dir, digest), "wb") as out:
            out.write(data)
        return "sha256:" + digest, len(data)


class DigestingSink(io.RawIOBase):
    """Forwards writes to an inner stream while hashing them."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.sha = hashlib.sha256()

    def writable(self):
        return True

    def write(self, data):
        self.sha.update(data)
        self.inner.write(data)
        return len(data)


def layer_bytes(rng, size, file_name):
    """Returns (compressed bytes, diff_id) for a tar.gz holding one random file."""
    compressed = io.BytesIO()
    gz = gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=1)
    sink = DigestingSink(gz)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        directory = tarfile.TarInfo("payload")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        directory.mtime = 0
        tar.addfile(directory)
        info = tarfile.TarInfo("payload/" + file_name)
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    gz.close()
    return compressed.getvalue(), "sha256:" + sink.sha.hexdigest()


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--layers", required=True)
    parser.add_argument("--platforms", default="linux/amd64,linux/arm64")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "big")
    rng = random.Random(seed)
    sizes = [parse_size(s) for s in args.layers.split(",") if s.strip()]

    os.makedirs(args.out, exist_ok=True)
    layout = Layout(args.out)
    with open(os.path.join(args.out, "oci-layout"), "w") as out:
        json.dump({"imageLayoutVersion": "1.0.0"}, out)

    described = []
    index_entries = []
    for platform in args.platforms.split(","):
        os_name, arch = platform.split("/")[:2]
        layers = []
        for number, size in enumerate(sizes):
            data, diff_id = layer_bytes(rng, size, "layer%d-%s.bin" % (number, arch))
            digest, length = layout.add(data)
            layers.append({"digest": digest, "size": length, "diff_id": diff_id})
        config = {
            "architecture": arch,
            "os": os_name,
            "created": CREATED,
            "config": {"Cmd": ["/payload"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
            "history": [
                {"created": CREATED, "created_by": "layer %d" % n} for n in range(len(layers))
            ],
        }
        config_digest, config_size = layout.add(canonical(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": l["digest"], "size": l["size"]} for l in layers
            ],
        }
        manifest_digest, manifest_size = layout.add(canonical(manifest))
        index_entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": arch, "os": os_name},
            }
        )
        described.append(
            {
                "os": os_name,
                "architecture": arch,
                "manifest": manifest_digest,
                "config": config_digest,
                "layers": layers,
            }
        )

    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
    index_digest, index_size = layout.add(canonical(index))
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_INDEX,
                "digest": index_digest,
                "size": index_size,
                "annotations": {"org.opencontainers.image.ref.name": args.tag},
            }
        ],
    }
    with open(os.path.join(args.out, "index.json"), "w") as out:
        json.dump(top, out)

    json.dump({"index": {"digest": index_digest, "size": index_size}, "platforms": described}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
