"""Fetch the web UI's vendored JavaScript and CSS from the npm registry at pinned versions.

The pins live in dashboards/static/vendor/manifest.json: per package, the version and
which files of its tarball to copy. `npm pack` fetches the tarball and checks it against
the registry's integrity hash; this script copies the files and records their sha256,
which the tests check, so a hand-edited vendored file is caught.

    python scripts/update_vendored.py                     # fetch every pinned file again
    python scripts/update_vendored.py --pin uplot=1.6.33  # move a pin, then fetch

No build step: the files are served as they are, and nothing is loaded from a CDN.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "dashboards" / "static" / "vendor"
MANIFEST = VENDOR / "manifest.json"


def fetch(package: str, version: str, files: dict[str, str], into: Path) -> dict[str, str]:
    """Copy ``files`` (tarball path -> vendored name) of package@version; their sha256s."""
    with tempfile.TemporaryDirectory() as work:
        packed = subprocess.run(
            ["npm", "pack", f"{package}@{version}", "--json", "--pack-destination", work],
            check=True,
            capture_output=True,
            text=True,
            cwd=work,
        )
        tarball = Path(work) / json.loads(packed.stdout)[0]["filename"]
        digests = {}
        with tarfile.open(tarball) as archive:
            for inside, name in files.items():
                member = archive.extractfile(f"package/{inside}")
                if member is None:
                    raise SystemExit(f"{package}@{version} has no file {inside}")
                data = member.read()
                (into / name).write_bytes(data)
                digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pin", action="append", default=[], metavar="PACKAGE=VERSION")
    args = parser.parse_args()
    if shutil.which("npm") is None:
        sys.stderr.write("update_vendored: needs npm (Debian package npm)\n")
        return 2
    manifest = json.loads(MANIFEST.read_text())
    for pin in args.pin:
        package, _, version = pin.partition("=")
        if package not in manifest or not version:
            sys.stderr.write(f"update_vendored: --pin {pin!r}: name a package of the manifest\n")
            return 2
        manifest[package]["version"] = version
    for package, entry in manifest.items():
        entry["sha256"] = fetch(package, entry["version"], entry["files"], VENDOR)
        sys.stdout.write(f"{package}@{entry['version']}: {', '.join(entry['files'].values())}\n")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
