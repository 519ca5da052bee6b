"""The README's two leading commands are the contract with users and with CI: check their shape
and that .ci/run runs the test command word for word."""
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


def test_ci_runs_the_readme_test_command():
    (_, install_test), _ = leading_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_test in ci_lines


def test_readme_names_every_console_script():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    for name in re.findall(r'"(gan-colorize[a-z-]*)=', setup):
        assert name in text, f"console script {name} is not documented in the README"
