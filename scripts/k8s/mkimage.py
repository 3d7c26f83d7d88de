#!/usr/bin/env python3
"""Make an image archive (OCI image layout plus a docker-style manifest.json) from layer tars.

No registry is reachable from this machine, so images are built as files and imported with
`ctr -n k8s.io images import`. Each LAYER is a plain tar or an already gzipped one (.tar.gz / .tgz, or
any file starting with the gzip magic): a gzipped layer is stored as it is, so a cached base layer is not
compressed again for every image build; only its uncompressed digest (the config's diff_id) is computed,
by streaming it through gunzip, and kept next to it in LAYER.diffid for the next build. Layers are applied in the order given (first = bottom). Everything is
deterministic: the same layers and options give the same manifest digest.

usage: mkimage.py NAME:TAG OUT.tar LAYER [LAYER...] [--entrypoint JSON] [--cmd JSON] [--env K=V]...
                  [--user UID:GID] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib

CREATED = "2026-01-01T00:00:00Z"  # fixed, so that rebuilding the same content gives the same digest
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


def is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def sha256_file(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def sha256_gunzipped(path: str) -> str:
    """The digest of the uncompressed stream (the layer's diff_id)."""
    h = hashlib.sha256()
    d = zlib.decompressobj(wbits=31)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(d.decompress(chunk))
    h.update(d.flush())
    return h.hexdigest()


def cached_diff_id(path: str) -> str:
    """sha256_gunzipped, remembered in PATH.diffid (valid while it is newer than the layer)."""
    side = path + ".diffid"
    try:
        if os.path.getmtime(side) >= os.path.getmtime(path):
            with open(side) as f:
                return f.read().strip()
    except OSError:
        pass
    digest = sha256_gunzipped(path)
    try:
        with open(side + ".part", "w") as f:
            f.write(digest + "\n")
        os.replace(side + ".part", side)
    except OSError:
        pass  # a read-only cache: compute it again next time
    return digest


class Layer:
    """One layer as it goes into the archive: the gzipped blob on disk, its digest and the diff_id."""

    def __init__(self, path: str, tmpdir: str) -> None:
        if is_gzip(path):
            self.blob = path
            self.diff_id = cached_diff_id(path)
        else:
            # a plain tar: diff_id while compressing it once into a temporary blob
            self.blob = os.path.join(tmpdir, f"layer{len(os.listdir(tmpdir))}.tar.gz")
            h = hashlib.sha256()
            # no file name and no time in the gzip header: the same tar gives the same blob
            with open(path, "rb") as src, open(self.blob, "wb") as raw, \
                    gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
            self.diff_id = h.hexdigest()
        self.digest, self.size = sha256_file(self.blob)


def add_bytes(t: tarfile.TarFile, path: str, data: bytes) -> None:
    ti = tarfile.TarInfo(path)
    ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
    t.addfile(ti, io.BytesIO(data))


def add_file(t: tarfile.TarFile, path: str, src: str, size: int) -> None:
    ti = tarfile.TarInfo(path)
    ti.size, ti.mtime, ti.mode = size, 0, 0o644
    with open(src, "rb") as f:
        t.addfile(ti, f)


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def make_image(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as tmp:
        layers = [Layer(p, tmp) for p in args.layers]
        config = {"Env": [DEFAULT_PATH, *args.env], "WorkingDir": args.workdir,
                  "Entrypoint": json.loads(args.entrypoint) or None, "Cmd": json.loads(args.cmd) or None}
        if args.user:
            config["User"] = args.user
        cfg = compact({
            "architecture": "amd64", "os": "linux", "created": CREATED, "config": config,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + la.diff_id for la in layers]},
            "history": [{"created": CREATED, "created_by": "mkimage.py " + os.path.basename(p)}
                        for p in args.layers],
        })
        cfg_dig = hashlib.sha256(cfg).hexdigest()
        man = compact({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + cfg_dig, "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": "sha256:" + la.digest, "size": la.size} for la in layers],
        })
        man_dig = hashlib.sha256(man).hexdigest()
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": "sha256:" + man_dig, "size": len(man),
                                "platform": {"architecture": "amd64", "os": "linux"},
                                "annotations": {"io.containerd.image.name": args.name,
                                                "org.opencontainers.image.ref.name":
                                                    args.name.rsplit(":", 1)[1]}}]}
        docker = [{"Config": "blobs/sha256/" + cfg_dig, "RepoTags": [args.name],
                   "Layers": ["blobs/sha256/" + la.digest for la in layers]}]
        part = args.out + ".part"
        with tarfile.open(part, "w") as t:
            add_bytes(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            add_bytes(t, "index.json", json.dumps(index).encode())
            add_bytes(t, "manifest.json", json.dumps(docker).encode())
            add_bytes(t, "blobs/sha256/" + cfg_dig, cfg)
            add_bytes(t, "blobs/sha256/" + man_dig, man)
            seen = set()
            for la in layers:  # an image may list the same layer twice; store its blob once
                if la.digest not in seen:
                    seen.add(la.digest)
                    add_file(t, "blobs/sha256/" + la.digest, la.blob, la.size)
        shutil.move(part, args.out)
    total = sum(la.size for la in layers)
    print(args.out, args.name, f"manifest sha256:{man_dig}", f"{len(layers)} layer(s), {total} bytes gzipped")
    return man_dig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="image reference NAME:TAG")
    p.add_argument("out", help="archive to write")
    p.add_argument("layers", nargs="+", help="layer tars, bottom first (.tar or gzipped)")
    p.add_argument("--entrypoint", default="[]", help="JSON list")
    p.add_argument("--cmd", default="[]", help="JSON list")
    p.add_argument("--env", action="append", default=[], help="K=V (repeatable); PATH is always set")
    p.add_argument("--user", default="", help="UID[:GID] the container runs as")
    p.add_argument("--workdir", default="/")
    make_image(p.parse_args())


if __name__ == "__main__":
    main()
