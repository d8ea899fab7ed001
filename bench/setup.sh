#!/usr/bin/env bash
# Create bench/.venv (Python 3.12) with mailout (editable), the newest Django and aiosmtplib.
# Idempotent: re-running reuses the venv and only upgrades what is missing or outdated.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" /root/.pyenv/versions/3.12.1/bin/python3.12 python3.12; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null
        then
            command -v "$candidate"
            return 0
        fi
    done
    echo "bench/setup.sh: no Python 3.12 found (set PYTHON=/path/to/python3.12)" >&2
    return 1
}

if [[ ! -x "$venv/bin/python" ]]; then
    python="$(find_python)"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
    -e "$root" "django>=6" aiosmtplib
"$venv/bin/python" - <<'PY'
import sys
from importlib.metadata import version

print(f"bench/.venv: Python {sys.version.split()[0]}", end="")
for name in ("mailout", "django", "aiosmtplib"):
    print(f", {name} {version(name)}", end="")
print()
PY
