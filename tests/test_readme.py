"""The README's two leading commands are the contract with users and with CI: check their shape
and that .ci/run runs both word for word, in a fresh virtual environment, as a new user would."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def leading_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [b.strip() for b in blocks[:2]], text


def test_readme_begins_with_two_commands():
    (install_run, install_test), text = leading_commands()
    head = text.split("```bash", 1)[0].strip()
    assert head == "# gan_colorize", "nothing but the title may come before the two commands"
    assert install_run.startswith("pip install -e .") and "python train.py" in install_run
    # the test extra, plus the optional extras whose tests would otherwise skip
    assert install_test.startswith("pip install -e '.[test") and "pytest" in install_test
    assert "\n" not in install_run and "\n" not in install_test


def test_ci_runs_both_readme_commands_word_for_word_in_a_fresh_venv():
    """.ci/run is a new user: a fresh virtual environment (in a temporary folder, without the
    machine's packages), activated, then the README's two commands, each a line of its own, in
    order; the first one's output checked for its `run_dir:` line."""
    (install_run, install_test), _ = leading_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    code = [line for line in ci_lines if line and not line.startswith("#")]
    assert install_run in code and install_test in code
    first, second = code.index(install_run), code.index(install_test)
    assert first < second
    venv = [i for i, line in enumerate(code) if re.search(r"\bpython3? -m venv\b", line)]
    assert venv and venv[0] < first, "the venv must be made before the README's commands"
    assert "--system-site-packages" not in code[venv[0]], code[venv[0]]
    assert "mktemp -d" in " ".join(code[:venv[0] + 1]), "the venv goes in a temporary folder"
    activate = [i for i, line in enumerate(code)
                if re.match(r"(\.|source) .*/bin/activate\"?$", line)]
    assert activate and venv[0] < activate[0] < first, "the venv must be active for both commands"
    # pip installs into that venv only: nothing between activating it and the commands leaves it
    assert not any("deactivate" in line for line in code[activate[0]:second])
    assert any("run_dir:" in line for line in code[first:second]), "command 1: check run_dir:"


def test_readme_names_every_console_script():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    for name in re.findall(r'"(gan-colorize[a-z-]*)=', setup):
        assert name in text, f"console script {name} is not documented in the README"
