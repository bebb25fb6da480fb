#!/usr/bin/env bash
# The test suite on another Airflow minor and Python, each pair in its own venv (.venv-airflow{minor}-py{python}).
#   tools/airflow_minor.sh 3.1 3.13 [pytest args...]
# Pins come from constraints/airflow-{minor}.txt (resolved for every Python the package declares).
set -euo pipefail
cd "$(dirname "$0")/.."
minor=$1 python_version=$2
shift 2
constraints="constraints/airflow-$minor.txt"
[ -f "$constraints" ] || { echo "no pins for Airflow $minor: $constraints is missing" >&2; exit 2; }

# The interpreter: pythonX.Y on the PATH, else a pyenv install of that version.
python=""
for candidate in "$(command -v "python$python_version" 2>/dev/null || true)" \
  "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$python_version".*/bin/"python$python_version"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c '' 2>/dev/null; then python=$candidate; break; fi
done
[ -n "$python" ] || { echo "Python $python_version not found: install it (pyenv install $python_version) or put python$python_version on the PATH" >&2; exit 2; }

venv=".venv-airflow$minor-py$python_version"
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$constraints" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
  # Bytecode compiled at install (as `make venv` does): Airflow's start costs half as much CPU.
  "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" -c "$constraints" \
    -e '.[test,dev,stack,s3]'
  touch "$stamp"
fi
echo "== Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)') on Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
exec "$venv/bin/pytest" "$@"
