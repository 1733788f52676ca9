"""`genaitrace check`: the corpus (every rule: true positives and look-alikes), output formats,
suppression and config, baseline, --diff, a real pre-commit run, and real packages' source."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from genaitrace_check.cli import main as check_main
from genaitrace_check.rules import RULES

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "check_corpus"
BIN = Path(sys.executable).parent
MARK = re.compile(r"#\s*(expect|clean): (GT\d+)")


def marks(root: Path) -> dict[str, set[tuple[str, int, str]]]:
    found: dict[str, set] = {"expect": set(), "clean": set()}
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for kind, rule in MARK.findall(line):
                found[kind].add((path.relative_to(root).as_posix(), number, rule))
    return found


def run_json(*args: str, cwd: Path | None = None) -> tuple[int, list[dict]]:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"check-{os.getpid()}.json"
    previous = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        code = check_main([*args, "--format", "json", "-o", str(out)])
    finally:
        os.chdir(previous)
    return code, json.loads(out.read_text())


def test_corpus_findings_are_exactly_the_expected_ones():
    code, findings = run_json(str(CORPUS))
    got = {(f["filename"], f["location"]["row"], f["code"]) for f in findings}
    expected = marks(CORPUS)
    assert got == expected["expect"], (sorted(expected["expect"] - got), sorted(got - expected["expect"]))
    assert code == 1
    assert not {(p, n, r) for p, n, r in expected["clean"]} & got


def test_every_rule_has_three_true_positives_and_three_lookalikes():
    expected = marks(CORPUS)
    positives = Counter(rule for _, _, rule in expected["expect"])
    lookalikes = Counter(rule for _, _, rule in expected["clean"])
    for rule in RULES:
        assert positives[rule] >= 3, rule
        assert lookalikes[rule] >= 3, rule


def test_text_output_is_ruff_like_with_a_fix_hint(capsys):
    code = check_main([str(CORPUS / "app" / "providers.py")])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    first = out[0]
    assert re.match(r"^.*app/providers\.py:\d+:\d+: GT101 raw HTTP call to `api\.openai\.com`", first), first
    assert out[1].startswith("  help: ")
    assert out[-1] == "Found 7 errors."


def test_clean_file_exits_zero(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\nversion='0'\n")
    (tmp_path / "ok.py").write_text("import litellm\n\ndef f():\n    return 1\n")
    assert check_main([str(tmp_path / "ok.py")]) == 0
    assert "All checks passed!" in capsys.readouterr().out


def test_sarif_is_2_1_0_with_rules_locations_and_fingerprints(tmp_path):
    out = tmp_path / "report.sarif"
    assert check_main([str(CORPUS), "--format", "sarif", "-o", str(out)]) == 1
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    run = sarif["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rule_ids == sorted(RULES)
    for rule in run["tool"]["driver"]["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["helpUri"]
    located = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"], r["ruleId"]) for r in run["results"]}
    assert located == marks(CORPUS)["expect"]
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert not location["artifactLocation"]["uri"].startswith("/")  # relative to %SRCROOT%
        assert location["region"]["startLine"] >= 1 and location["region"]["startColumn"] >= 1
        assert result["partialFingerprints"]["genaitraceFinding/v1"]
    fingerprints = [r["partialFingerprints"]["genaitraceFinding/v1"] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)


def test_statistics_and_explain(capsys):
    check_main([str(CORPUS), "--statistics"])
    lines = capsys.readouterr().out.strip().splitlines()
    counts = {line.split("\t")[1]: int(line.split("\t")[0]) for line in lines}
    _, findings = run_json(str(CORPUS))
    assert counts == Counter(f["code"] for f in findings)
    assert set(counts) == set(RULES)
    for rule in RULES:
        assert check_main(["--explain", rule.lower()]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"{rule} (") and "Fix:" in text and "Not flagged" in text
    assert check_main(["--explain", "GT999"]) == 2


def test_select_ignore_and_config_errors(tmp_path, capsys):
    code, findings = run_json(str(CORPUS), "--select", "GT10")
    assert {f["code"] for f in findings} == set(RULES)
    code, findings = run_json(str(CORPUS), "--select", "GT101,GT103", "--ignore", "GT103")
    assert {f["code"] for f in findings} == {"GT101"}
    (tmp_path / "pyproject.toml").write_text("[tool.genaitrace.check]\nselet = ['GT101']\n")
    (tmp_path / "a.py").write_text("x = 1\n")
    assert check_main([str(tmp_path)]) == 2
    assert "unknown key 'selet'" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text("[tool.genaitrace.check]\nignore = ['GT901']\n")
    assert check_main([str(tmp_path)]) == 2
    assert "unknown rule GT901" in capsys.readouterr().err


def test_process_launchers_are_flagged_when_the_process_instrumentation_is_disabled(tmp_path):
    """Process.start and ProcessPoolExecutor carry the context (instrumentation/processes.py), so they
    are clean by default; with `processes` disabled nothing does, and they are flagged."""
    shutil.copy(CORPUS / "workers" / "pools.py", tmp_path / "pools.py")
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\nversion='0'\n")
    lines = lambda found: sorted(f["location"]["row"] for f in found if f["code"] == "GT103")  # noqa: E731
    default = lines(run_json(str(tmp_path / "pools.py"))[1])
    (tmp_path / "pyproject.toml").write_text("[tool.genaitrace.check]\ndisabled-instrumentations = ['processes']\n")
    disabled = lines(run_json(str(tmp_path / "pools.py"))[1])
    source = (tmp_path / "pools.py").read_text().splitlines()
    row = lambda text: next(n for n, line in enumerate(source, 1) if text in line)  # noqa: E731
    carried = {row("pool.submit(summarise, texts[0])"), row("multiprocessing.Process(target=summarise")}
    assert not carried & set(default)
    assert carried <= set(disabled)
    assert set(default) < set(disabled)  # Pool.map and _thread are flagged either way


SDK_CLIENTS_APP = """import anthropic
import boto3
import cohere
import openai

bedrock = boto3.client("bedrock-runtime")
claude = anthropic.Anthropic()
command = cohere.ClientV2()
gpt = openai.OpenAI()
"""


@pytest.mark.parametrize("declared, flagged", [
    # nothing declared: the genaitrace distro's defaults (openai and anthropic instrumented)
    ("[project]\nname = 'x'\nversion = '0'\n", ["boto3", "cohere"]),
    # exactly the instrumentors the project declares, from its dependencies...
    ("[project]\nname = 'x'\nversion = '0'\ndependencies = ['openai>=1', 'opentelemetry-instrumentation-bedrock==0.62.4']\n",
     ["anthropic", "cohere", "openai"]),
    # ...its optional dependencies and dependency groups (PEP 503 names, extras)
    ("[project]\nname = 'x'\nversion = '0'\n[project.optional-dependencies]\nobs = ['OpenInference_Instrumentation.Anthropic']\n"
     "[dependency-groups]\nobs = ['genaitrace[app]']\n", []),
    # an explicit list wins
    ("[project]\nname = 'x'\nversion = '0'\ndependencies = ['traceloop-sdk']\n[tool.genaitrace.check]\ninstrumented = ['openai']\n",
     ["anthropic", "boto3", "cohere"]),
])
def test_uninstrumented_sdk_clients_follow_the_instrumentors_the_project_declares(tmp_path, declared, flagged):
    (tmp_path / "pyproject.toml").write_text(declared)
    (tmp_path / "app.py").write_text(SDK_CLIENTS_APP)
    _, findings = run_json(str(tmp_path / "app.py"))
    libraries = {"bedrock": "boto3", "claude": "anthropic", "command": "cohere", "gpt": "openai"}
    lines = SDK_CLIENTS_APP.splitlines()
    got = sorted(libraries[lines[f["location"]["row"] - 1].split(" =")[0]] for f in findings if f["code"] == "GT101")
    assert got == flagged, findings


def test_a_requirements_file_declares_instrumentors_too(tmp_path):
    (tmp_path / "requirements.txt").write_text("# pinned\n-r base.txt\ntraceloop-sdk==0.62.4 ; python_version >= '3.10'\n")
    (tmp_path / "app.py").write_text(SDK_CLIENTS_APP)
    (tmp_path / ".git").mkdir()  # the project root, without a pyproject.toml
    _, findings = run_json(str(tmp_path / "app.py"))
    assert [f for f in findings if f["code"] == "GT101"] == []


def test_noqa_forms(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\nversion='0'\n")
    (tmp_path / "m.py").write_text(
        "import requests\n"
        "requests.post('https://api.openai.com/v1/x')  # noqa: GT101\n"
        "requests.post('https://api.openai.com/v1/x')  # noqa: GT102\n"
        "requests.post('https://api.openai.com/v1/x')  # noqa\n"
        "requests.post(\n    'https://api.anthropic.com/v1/messages',\n)  # noqa: GT101\n"
        "requests.post('https://api.mistral.ai/v1/x')  # NOQA:GT101,GT104\n")
    code, findings = run_json(str(tmp_path / "m.py"))
    assert [f["location"]["row"] for f in findings] == [3]  # the wrong code does not suppress
    (tmp_path / "m.py").write_text("# genaitrace: noqa\n" + (tmp_path / "m.py").read_text())
    assert run_json(str(tmp_path / "m.py"))[1] == []


def test_baseline_keeps_known_findings_out_and_survives_moved_lines(tmp_path):
    project = tmp_path / "proj"
    shutil.copytree(CORPUS, project)
    baseline = project / "baseline.json"
    assert check_main([str(project), "--baseline", str(baseline), "--update-baseline"]) == 0
    assert check_main([str(project), "--baseline", str(baseline)]) == 0
    providers = project / "app" / "providers.py"
    text = providers.read_text()
    providers.write_text("\n\n# moved down\n" + text + "\n\ndef new_leak():\n"
                         "    return requests.post('https://api.deepseek.com/chat/completions')\n")
    code, findings = run_json(str(project), "--baseline", str(baseline))
    assert code == 1
    assert [(f["filename"], f["code"]) for f in findings] == [("app/providers.py", "GT101")]
    assert "api.deepseek.com" in findings[0]["message"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


def test_diff_mode_checks_only_changed_files(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project]\nname='x'\nversion='0'\n")
    (repo / "old.py").write_text("import requests\nrequests.post('https://api.openai.com/v1/x')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "old")
    (repo / "new.py").write_text("import requests\nrequests.post('https://api.anthropic.com/v1/messages')\n")
    code, findings = run_json("--diff", cwd=repo)
    assert code == 1 and [f["filename"] for f in findings] == ["new.py"]
    code, findings = run_json(cwd=repo)
    assert sorted(f["filename"] for f in findings) == ["new.py", "old.py"]


def test_runs_as_a_real_pre_commit_hook(tmp_path):
    manifest = subprocess.run([str(BIN / "pre-commit"), "validate-manifest", str(REPO / ".pre-commit-hooks.yaml")],
                              capture_output=True, text=True)
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project]\nname='x'\nversion='0'\n")
    hook = {"id": "genaitrace-check", "name": "genaitrace check", "entry": str(BIN / "genaitrace-check"),
            "language": "system", "types": ["python"], "require_serial": True}
    (repo / ".pre-commit-config.yaml").write_text(json.dumps({"repos": [{"repo": "local", "hooks": [hook]}]}))
    (repo / "app.py").write_text("import requests\nrequests.post('https://api.openai.com/v1/chat/completions')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    failed = subprocess.run([str(BIN / "pre-commit"), "run", "--all-files"], cwd=repo, capture_output=True,
                            text=True, env=env, timeout=120)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "app.py:2:1: GT101" in failed.stdout
    (repo / "app.py").write_text("import litellm\n")
    _git(repo, "add", ".")
    passed = subprocess.run([str(BIN / "pre-commit"), "run", "--all-files"], cwd=repo, capture_output=True,
                            text=True, env=env, timeout=120)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_genaitrace_check_subcommand_starts_without_the_collector(tmp_path):
    (tmp_path / "a.py").write_text("import os\nos.environ['OTEL_SDK_DISABLED'] = 'true'\n")
    probe = ("import sys, runpy; sys.argv = ['genaitrace', 'check', sys.argv[1]];"
             "from collector.entry import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code, 'typer' in sys.modules, 'chdb' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "a.py")], capture_output=True, text=True)
    assert "GT104" in result.stdout
    assert result.stdout.strip().endswith("exit 1 False False"), result.stdout


@pytest.mark.parametrize("package", ["litellm", "crewai", "openai"])
def test_installed_packages_are_checked_without_crashing(package):
    import importlib.util

    location = Path(importlib.util.find_spec(package).origin).parent
    result = subprocess.run([str(BIN / "genaitrace-check"), str(location), "--statistics", "--exit-zero", "-j", "2"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_the_projects_own_instrumentation_and_demo_are_clean():
    result = subprocess.run([str(BIN / "genaitrace-check"), "instrumentation", "collector/demo.py"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_processes_find_exactly_what_one_process_finds(tmp_path, monkeypatch):
    """A large tree is checked in worker processes that trade summaries of the modules they parsed
    (re-exports, helpers); the corpus split across them must give the corpus's exact findings."""
    from genaitrace_check import runner

    project = tmp_path / "proj"
    shutil.copytree(CORPUS, project)
    filler = project / "b_filler"  # sorts between app/ and scripts/: the corpus is split across workers
    filler.mkdir()
    for number in range(runner.IN_WORKERS_FROM):
        (filler / f"m{number:03}.py").write_text("".join(f"def f{i}():\n    return {i}\n" for i in range(40)))
    expected = {(p, n, r) for p, n, r in marks(CORPUS)["expect"]}
    for jobs in ("1", "2", "3"):
        _, findings = run_json(str(project), "-j", jobs)
        assert {(f["filename"], f["location"]["row"], f["code"]) for f in findings} == expected, jobs
    in_workers = run_json(str(project), "-j", "2")[1]
    monkeypatch.setattr(runner, "IN_WORKERS_FROM", 10**9)
    assert run_json(str(project), "-j", "2")[1] == in_workers
