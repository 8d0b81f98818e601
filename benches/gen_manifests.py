#!/usr/bin/env python3
"""Write N cached image manifests straight into a cache directory, in the on-disk format.

Usage:
    gen_manifests.py --cache DIR --count N [--registry upstream.test] [--repo bench/many]

Each manifest is a distinct OCI image manifest (one config, three layers, digests derived
from its number; the blobs themselves are not written) stored as `DIR/img/<hex>`: a
ManifestHolder JSON file (`type` 3, bare hex `digest`, `imageUrl` REGISTRY/REPO:tN,
base64 `bytes` of the exact manifest, the decoded `v1.oci.manifest`, `created`, `pulled`),
as a server that pulled REGISTRY/REPO:t0 ... :t(N-1) would have left them.

Prints {"count", "last_tag", "bytes"} on stdout.
"""

import argparse
import base64
import hashlib
import json
import os
import sys

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
STAMP = "2024-01-01T00:00:00"


def fake_digest(*parts):
    return "sha256:" + hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--registry", default="upstream.test")
    parser.add_argument("--repo", default="bench/many")
    args = parser.parse_args()

    img = os.path.join(args.cache, "img")
    os.makedirs(img, exist_ok=True)
    written = 0
    for n in range(args.count):
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": fake_digest("config", n), "size": 1469},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": fake_digest("layer", n, i), "size": 1048576 * (i + 1)}
                for i in range(3)
            ],
        }
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        hexdigest = hashlib.sha256(raw).hexdigest()
        holder = {
            "type": 3,
            "digest": hexdigest,
            "imageUrl": "%s/%s:t%d" % (args.registry, args.repo, n),
            "bytes": base64.b64encode(raw).decode(),
            "v1.oci.manifest": manifest,
            "created": STAMP,
            "pulled": STAMP,
        }
        data = json.dumps(holder).encode()
        with open(os.path.join(img, hexdigest), "wb") as out:
            out.write(data)
        written += len(data)
    json.dump({"count": args.count, "last_tag": "t%d" % (args.count - 1), "bytes": written}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
