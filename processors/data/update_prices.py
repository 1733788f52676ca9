"""Refresh `model_prices.json` (litellm's price map) and its `.meta.json` snapshot date.

    python processors/data/update_prices.py                      # from the installed litellm package (read as a file)
    python processors/data/update_prices.py --from path/or/url    # e.g. https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json

Every entry is validated first (numbers >= 0 for each per-token price field); a malformed entry
aborts with the file, the key and what is wrong, and the current file is left untouched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from processors.pricing import PriceMapError, validate_entry  # noqa: E402


def _installed_litellm_file() -> Path:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("litellm is not installed here; pass --from PATH_OR_URL")
    return Path(list(spec.submodule_search_locations)[0]) / "model_prices_and_context_window_backup.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default="", help="file path or http(s) URL of a litellm price map")
    parser.add_argument("--out", default=str(HERE / "model_prices.json"))
    args = parser.parse_args(argv)
    source = args.source or str(_installed_litellm_file())
    label = source
    if not args.source:
        import importlib.metadata

        label = f"litellm {importlib.metadata.version('litellm')} model_prices_and_context_window_backup.json"
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - operator-given URL
            text = response.read().decode()
    else:
        text = Path(source).read_text()
    document = json.loads(text)
    try:
        for key, entry in document.items():
            if key != "sample_spec":
                validate_entry(source, key, entry)
    except PriceMapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.write_text(text)
    meta = {"source": label, "snapshot_date": dt.date.today().isoformat(), "entries": len(document)}
    out.with_name(out.stem + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({len(document)} entries, snapshot {meta['snapshot_date']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
