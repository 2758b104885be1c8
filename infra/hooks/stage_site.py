"""Stages the static site for Azure Static Web Apps: the web service's predeploy hook.

Copies static-web/ into infra/site/ (the folder azd deploys for the `web` service), with
- config.js's `apiBase` set to the deployed API (API_BASE_URL, an output of infra/main.bicep),
- that API's origin added to `connect-src` of every Content-Security-Policy in
  staticwebapp.config.json, so the page may call it and nothing else.
static-web/ itself is never changed: locally (`make run`) it keeps its same-origin "/api".

    python infra/hooks/stage_site.py                       # API_BASE_URL from azd's environment
    python infra/hooks/stage_site.py --api-base-url https://func-x.azurewebsites.net/api
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "static-web"
TARGET = ROOT / "infra" / "site"
KEEP = frozenset({".gitignore"})  # the target's own files, left in place
SKIPPED = frozenset({"package.json", "node_modules"})  # development files, not part of the site
CONFIG_FILE = "staticwebapp.config.json"
CSP = "Content-Security-Policy"
API_BASE = re.compile(r"""(export\s+const\s+apiBase\s*=\s*)(["'`])[^"'`]*\2""")


class StagingError(Exception):
    """Nothing usable was staged; the message says why."""


def api_origin(api_base_url: str) -> str:
    """https://host[:port] of the API; anything but an absolute https URL is refused."""
    parts = urlsplit(api_base_url)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise StagingError(f"API base URL must be an absolute https URL, got {api_base_url!r}")
    return f"https://{parts.netloc}"


def with_connect_src(policy: str, origin: str) -> str:
    """The policy with `origin` allowed in connect-src (added once; the directive is created
    with 'self' if the policy has none)."""
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    for index, directive in enumerate(directives):
        name, *sources = directive.split()
        if name.lower() == "connect-src":
            if origin not in sources:
                sources.append(origin)
            directives[index] = " ".join([name, *sources])
            break
    else:
        directives.append(f"connect-src 'self' {origin}")
    return "; ".join(directives)


def patch_config(config: dict, origin: str) -> int:
    """Adds the origin to every CSP header of a staticwebapp.config.json; returns how many."""
    header_sets = [config.get("globalHeaders") or {}]
    header_sets += [route.get("headers") or {} for route in config.get("routes") or []]
    patched = 0
    for headers in header_sets:
        # An empty value removes the header on that route: leave it empty.
        if headers.get(CSP):
            headers[CSP] = with_connect_src(headers[CSP], origin)
            patched += 1
    return patched


def patch_config_js(text: str, api_base_url: str) -> str:
    replaced, count = API_BASE.subn(
        lambda match: f"{match.group(1)}{json.dumps(api_base_url)}", text, count=1
    )
    if count != 1:
        raise StagingError('config.js has no `export const apiBase = "..."` to set')
    return replaced


def clear(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in target.iterdir():
        if entry.name in KEEP:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def stage(source: Path, target: Path, api_base_url: str) -> Path:
    """Copies the site from `source` to `target` pointed at `api_base_url`."""
    api_base_url = api_base_url.rstrip("/")
    origin = api_origin(api_base_url)
    config_path = source / CONFIG_FILE
    if not (source / "index.html").is_file() or not config_path.is_file():
        raise StagingError(f"{source} has no index.html or {CONFIG_FILE}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if patch_config(config, origin) == 0:
        raise StagingError(f"{CONFIG_FILE} sets no {CSP}; refusing to guess one")

    clear(target)
    for entry in source.iterdir():
        if entry.name in SKIPPED:
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        else:
            shutil.copy2(entry, target / entry.name)
    config_js = target / "config.js"
    config_js.write_text(
        patch_config_js(config_js.read_text(encoding="utf-8"), api_base_url), encoding="utf-8"
    )
    (target / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base-url", default=os.environ.get("API_BASE_URL"))
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    if not args.api_base_url:
        return _failed(
            "API_BASE_URL is not set; run `azd provision` first (it is an output of "
            "infra/main.bicep)"
        )
    try:
        target = stage(args.source, args.target, args.api_base_url)
    except (StagingError, OSError, ValueError) as error:
        return _failed(error)
    print(f"stage_site: {args.source} -> {target}, API {args.api_base_url.rstrip('/')}")
    return 0


def _failed(reason: object) -> int:
    """Why the site was not staged, on stderr; the hook's exit status then."""
    print(f"stage_site: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
