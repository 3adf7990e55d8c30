"""Write plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed inlined.

DVC's default page loads the three scripts from a CDN, so `dvc plots show` and
`dvc plots diff` draw nothing offline. .dvc/config names this page instead
(`plots.html_template`); it inlines the scripts, so every page DVC writes is
self-contained. DVC fills `{plot_divs}` and `{refresh_tag}`; the page has no
`{scripts}` slot, which is where DVC would add its CDN tags.

The scripts come from the npm registry at pinned versions, checked against the
registry's sha512 integrity. Run this only to change versions:
`python plots/make_offline_template.py` (needs https://registry.npmjs.org).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "offline.html"
LICENSES = HERE / "THIRD_PARTY_LICENSES.md"
REGISTRY = "https://registry.npmjs.org"
# The majors DVC's own page uses (vega 5, vega-lite 5, vega-embed 6); DVC's specs are vega-lite v5.
PACKAGES = {
    "vega": (
        "5.33.1",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
    ),
    "vega-lite": (
        "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
    ),
    "vega-embed": (
        "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
    ),
}

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
SCRIPTS
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def fetch(name: str, version: str, integrity: str) -> tarfile.TarFile:
    url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
    data = urllib.request.urlopen(url, timeout=60).read()
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != integrity:
        raise SystemExit(f"{url}: sha512 integrity {got} is not the pinned {integrity}")
    return tarfile.open(fileobj=io.BytesIO(data))


def script_tag(name: str, version: str, source: str) -> str:
    # Inline script text ends at the first `</script`; `<!--` would change how it is parsed.
    if re.search(r"</script|<!--", source, re.IGNORECASE):
        raise SystemExit(f"{name}@{version}: the minified script cannot be inlined as is")
    return f"    <!-- {name} {version}, build/{name}.min.js from npm, BSD-3-Clause -->\n    <script>{source}</script>"


def main() -> None:
    tags, notices = [], ["# Third-party scripts inlined in plots/offline.html\n"]
    for name, (version, integrity) in PACKAGES.items():
        with fetch(name, version, integrity) as tar:
            source = tar.extractfile(f"package/build/{name}.min.js").read().decode("utf-8").strip()
            members = tar.getnames()
            license_text = (
                tar.extractfile("package/LICENSE").read().decode("utf-8").strip()
                if "package/LICENSE" in members
                else "The npm package ships no license file; its package.json declares BSD-3-Clause "
                f"(text: https://github.com/vega/{name}/blob/main/LICENSE)."
            )
        tags.append(script_tag(name, version, source))
        notices.append(f"## {name} {version} (npm, {integrity})\n\n```\n{license_text}\n```\n")
    TEMPLATE.write_text(PAGE.replace("SCRIPTS", "\n".join(tags)), encoding="utf-8")
    LICENSES.write_text("\n".join(notices), encoding="utf-8")
    print(f"wrote {TEMPLATE} ({TEMPLATE.stat().st_size} bytes) and {LICENSES}")


if __name__ == "__main__":
    main()
