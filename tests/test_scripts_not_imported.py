"""Tests must not import a script that defines absl flags at import time.

Two such scripts loaded into one pytest process collide on a shared flag name (``--out``) and
fail with DuplicateFlagError, depending on test order. Scripts stay thin CLIs; their logic lives
in importable modules (``common.significance``, ``common.recsys.paired``, ``cord_jax.report``),
and tests run a script only in a subprocess.
"""

import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Ways a test could load scripts/<name>.py into its own process.
_LOADS = (re.compile(r"""spec_from_file_location\([^)]*["'](\w+)["']"""),
          re.compile(r"""_module\(\s*["'](\w+)["']\s*\)"""),
          re.compile(r"^\s*import (\w+)\s+# noqa", re.M))


def _scripts_loaded_by(text):
  names = set()
  for pattern in _LOADS:
    names.update(pattern.findall(text))
  if "scripts" in text and "sys.path.insert" in text:
    names.update(re.findall(r"^import (\w+)", text, re.M))
  return {n for n in names if os.path.exists(os.path.join(REPO, "scripts", n + ".py"))}


def test_no_test_imports_a_script_with_flags():
  offenders = []
  for test in sorted(glob.glob(os.path.join(REPO, "tests", "**", "*.py"), recursive=True)):
    if os.path.samefile(test, __file__):
      continue
    with open(test) as f:
      text = f.read()
    for name in _scripts_loaded_by(text):
      with open(os.path.join(REPO, "scripts", name + ".py")) as f:
        if re.search(r"^\w+\s*=\s*flags\.DEFINE_|^flags\.DEFINE_", f.read(), re.M):
          offenders.append(f"{os.path.relpath(test, REPO)} imports scripts/{name}.py")
  assert not offenders, ("move the script's logic into a module and test that: "
                         + "; ".join(offenders))


def test_the_check_catches_the_old_pattern():
  old = ('sys.path.insert(0, os.path.join(HERE, "..", "scripts"))\n'
         "import cord_report  # noqa: E402\n")
  assert _scripts_loaded_by(old) == {"cord_report"}
  assert _scripts_loaded_by('spec_from_file_location("paired_test", p)') == {"paired_test"}
