"""The command line: doctor is green on the real stack; bad configuration or input is one clear
line (exit 2); any other exception is a bug and keeps its traceback (exit 1)."""

import json
import logging

import pytest

from fusionrec.cli import COMMANDS, main


def test_doctor_green(cfg, spark, tmp_path, capsys):
    report = tmp_path / "doctor.json"
    args = ["doctor", "--report", str(report)]
    for key, value in cfg.flat().items():
        if key.split(".")[0] in ("spark", "lake", "mlflow") and value is not None and not isinstance(value, dict):
            args += ["--set", f"{key}={value}"]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "doctor: all checks passed" in out
    checks = json.loads(report.read_text())["results"]["checks"]
    assert {c["name"] for c in checks} == {"java", "packages", "spark", "delta", "sparknlp", "mlflow"}
    assert all(c["ok"] for c in checks)


def test_bad_override_is_one_line_error(capsys, tmp_path):
    report = tmp_path / "r.json"
    code = main(["doctor", "--set", "spark.shuffle_partitions=lots", "--report", str(report)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["fusionrec doctor: error: --set spark.shuffle_partitions: 'spark.shuffle_partitions' must be an integer, got 'lots'"]
    assert json.loads(report.read_text())["status"] == "failed"


def test_doctor_checks_fail(cfg, tmp_path, monkeypatch):
    """The package and MLflow checks report what is wrong (no Spark needed for these two)."""
    import dataclasses

    from fusionrec.commands import doctor

    pins = doctor.lane_pins()
    assert pins["pyspark"] == "3.5.8" and pins["mlflow"].startswith("3.") and "numpy" not in pins
    assert doctor._packages(cfg).ok
    monkeypatch.setattr(doctor, "lane_pins", lambda: {**pins, "pyspark": "0.0.1"})
    assert not doctor._packages(cfg).ok

    store = dataclasses.replace(cfg.mlflow, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                experiment="doctor-test", artifact_location="/proc/forbidden/artifacts")
    check = doctor._mlflow(cfg.replace(mlflow=store), {})
    assert not check.ok and "/proc/forbidden/artifacts is not writable" in check.detail and check.fix
    writable = dataclasses.replace(store, experiment="doctor-ok", artifact_location=str(tmp_path / "art"))
    assert doctor._mlflow(cfg.replace(mlflow=writable), {}).ok
def test_bad_input_is_one_line_error(capsys, tmp_path):
    code = main(["generate", "--out", str(tmp_path / "gen"), "--events", "10", "--dirty-share", "1.5"])
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if "error:" in line] == [
        "fusionrec generate: error: generate: need n_events >= 0, n_users >= 1, n_items >= 1 and 0 <= dirty_share < 1"]
    assert "Traceback" not in err


@pytest.mark.parametrize("bug", [ValueError("bad shape"), RuntimeError("bad state"), FileNotFoundError("x.npz"),
                                 KeyError("als")])
def test_any_other_exception_is_a_bug_with_its_traceback(bug, capsys, monkeypatch, tmp_path):
    import fusionrec.generate

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(fusionrec.generate, "generate", broken)
    report = tmp_path / "r.json"
    code = main(["generate", "--out", str(tmp_path / "gen"), "--events", "10", "--report", str(report)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err and f"{type(bug).__name__}: " in err
    assert "fusionrec generate failed" in err and "fusionrec generate: error:" not in err
    assert json.loads(report.read_text())["status"] == "failed"


def test_help_is_plain_text_and_imports_no_command(tmp_path):
    """``fusionrec --help`` lists every command without importing any of them (nor Spark,
    MLflow or pandas), so it answers at once; the text has no docstring markup."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fusionrec.cli import COMMANDS

    lib = str(Path(__file__).resolve().parents[1] / "lib")

    probe = ("import sys\nfrom fusionrec.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'mlflow', 'pandas', 'py4j')"
             " or m.startswith('fusionrec.commands.'))\nprint('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "``" not in result.stdout
    for name in COMMANDS:
        assert f"\n    {name} " in result.stdout or f"\n    {name}\n" in result.stdout, name


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_imports_neither_spark_nor_mlflow(command, tmp_path):
    """``fusionrec COMMAND --help`` imports only the command's module, whose heavy imports wait
    for ``run``: importing MLflow or pyspark alone takes seconds."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    lib = str(Path(__file__).resolve().parents[1] / "lib")
    probe = ("import contextlib, io, sys\nfrom fusionrec.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
             f"    try:\n        main([{command!r}, '--help'])\n"
             "    except SystemExit as done:\n        assert done.code == 0, done.code\n"
             f"assert out.getvalue().startswith('usage: fusionrec {command}'), out.getvalue()\n"
             "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'py4j', 'mlflow', 'delta'}))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_ingest_source_is_checked_without_importing_spark_for_help(capsys):
    """``--source`` names every adapter in its help, and anything else is an argparse error."""
    from fusionrec.ingest.pipeline import SOURCES

    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(source in out for source in SOURCES), out
    with pytest.raises(SystemExit) as done:
        main(["ingest", "--source", "parquet", "--path", "x"])
    assert done.value.code == 2 and "invalid choice: 'parquet'" in capsys.readouterr().err


def test_version_and_defaults_in_help(capsys):
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"fusionrec {project['project']['version']}"
    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    out = capsys.readouterr().out
    assert "--seed SEED        seed of --generate (default: 42)" in out and "``" not in out


def test_command_help_is_read_from_each_module():
    from fusionrec.cli import COMMANDS, command_help
    import importlib

    for name in COMMANDS:
        assert command_help(name) == importlib.import_module(f"fusionrec.commands.{name}").HELP


@pytest.mark.parametrize("args, env, message", [
    (["--set", "model.rank=[1,"], {}, "--set model.rank: value '[1,' for 'model.rank' is not valid YAML"),
    (["--set", "model.rank=-5"], {}, "--set model.rank: 'model.rank' must be >= 1, got -5"),
    (["--set", "lake.root="], {}, "--set lake.root: 'lake.root' must be a non-empty string, got ''"),
    ([], {"FUSIONREC_MODEL__RANK": "[1,"}, "$FUSIONREC_MODEL__RANK: value '[1,' for 'model.rank' is not valid YAML"),
    ([], {"FUSIONREC_NOSUCH__KEY": "1"}, "$FUSIONREC_NOSUCH__KEY: unknown key 'nosuch'"),
])
def test_bad_settings_are_one_line_with_exit_2(args, env, message, capsys, monkeypatch, tmp_path):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # conf/local.yaml is read too
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["generate", "--out", str(tmp_path / "gen"), "--events", "10", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [f"fusionrec generate: error: {message}" + err.split(message, 1)[1].splitlines()[0]]
    assert "Traceback" not in err and "local.yaml" not in err
    assert not (tmp_path / "gen").exists()


def _unreadable(path):
    """A file this process cannot read: mode 000, or for root (who reads any mode) a link to
    a write-only kernel setting."""
    import os

    if os.geteuid() == 0:
        os.symlink("/proc/sys/vm/compact_memory", path)
    else:
        path.write_text("{}\n")
        path.chmod(0)
    return path


def test_bad_local_inputs_fail_before_spark_starts(tmp_path):
    """Each bad input is one line naming the path and the problem, exit 2, with no Spark
    session started and nothing written (run in a child process: this one may hold a session)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    project = Path(__file__).resolve().parents[1]
    good = '{"user_id": "u1", "item_id": "i1", "event_type": "view", "ts": 1600000000}\n'

    def folder(name, *entries):
        d = tmp_path / name
        d.mkdir()
        (d / "events-1.jsonl").write_text(good)
        for entry in entries:
            entry(d)
        return d

    dangling = folder("dangling", lambda d: (d / "events-2.jsonl").symlink_to(d / "gone.jsonl"))
    loop = folder("loop", lambda d: (d / "items-1.jsonl").symlink_to(d / "items-1.jsonl"))
    named_like_input = folder("named", lambda d: (d / "events-2.jsonl").mkdir())
    unreadable = folder("unreadable", lambda d: _unreadable(d / "reviews-1.jsonl"))
    cases = [
        (["ingest", "--dir", "--path", str(dangling)],
         f"{dangling}/events-2.jsonl: dangling symbolic link (to {dangling}/gone.jsonl)"),
        (["ingest", "--dir", "--path", str(loop)], f"{loop}/items-1.jsonl: symbolic link loop"),
        (["ingest", "--dir", "--path", str(named_like_input)],
         f"{named_like_input}/events-2.jsonl: is a directory, not an input file"),
        (["ingest", "--source", "reviews", "--path", str(unreadable)], f"{unreadable}/reviews-1.jsonl: permission denied"),
        (["ingest", "--source", "events", "--path", str(unreadable / "reviews-1.jsonl")],
         f"{unreadable}/reviews-1.jsonl: permission denied"),
        (["ingest", "--source", "events", "--path", str(tmp_path / "missing")], f"{tmp_path}/missing: no such file or directory"),
        (["pipeline", "--dir", str(dangling)], f"{dangling}/events-2.jsonl: dangling symbolic link"),
        (["pipeline", "--movielens", str(named_like_input)], f"{named_like_input}: directory has no input files"),
    ]
    probe = (
        "import json, sys\nfrom fusionrec.cli import main\nfrom pyspark import SparkContext\n"
        "code = main(json.loads(sys.argv[1]))\n"
        "print('RESULT', code, SparkContext._active_spark_context is None)\n")
    lake = tmp_path / "lake"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project / "lib"), os.environ.get("PYTHONPATH", "")])}
    for args, message in cases:
        argv = args + ["--set", f"lake.root={lake}", "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'm.db'}"]
        result = subprocess.run([sys.executable, "-c", probe, json.dumps(argv)], capture_output=True, text=True,
                                timeout=300, cwd=project, env=env)
        errors = [line for line in result.stderr.splitlines() if ": error: " in line]
        assert "RESULT 2 True" in result.stdout, (args, result.stdout, result.stderr[-3000:])
        assert len(errors) == 1 and errors[0].startswith(f"fusionrec {args[0]}: error: {message}"), result.stderr
        assert "Traceback" not in result.stderr
    assert not lake.exists() and not (tmp_path / "m.db").exists()


def test_only_outermost_stages_and_warnings_reach_the_console(caplog):
    """A stage inside another logs at DEBUG; inside warnings_only (a pipeline stage, which the
    pipeline reports in one line) fusionrec's INFO logs are dropped but warnings stay."""
    import logging

    from fusionrec.runlog import stage, warnings_only

    caplog.set_level(logging.INFO, logger="fusionrec")
    with stage("outer") as record:
        with stage("inner"):
            pass
        record.counts["rows"] = 3
    with warnings_only():
        logging.getLogger("fusionrec.model").info("detail")
        logging.getLogger("fusionrec.model").warning("kept")
    assert logging.getLogger("fusionrec").level == logging.INFO
    lines = [(r.levelname, r.getMessage().strip()) for r in caplog.records]
    assert lines[0] == ("INFO", "stage=outer event=start")
    assert lines[1][0] == "INFO" and lines[1][1].startswith("stage=outer event=end") and "rows=3" in lines[1][1]
    assert lines[2:] == [("WARNING", "kept")]


def test_mlflow_imported_after_logging_setup_stays_at_warnings(tmp_path):
    """The commands import MLflow lazily, after the CLI set up logging; MLflow then configures
    its own logger, and must still log warnings only ("Creating initial MLflow database
    tables..." at INFO is not for the console)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    lib = str(Path(__file__).resolve().parents[1] / "lib")
    probe = ("import logging\nfrom fusionrec.runlog import setup_logging\nsetup_logging(0)\nimport mlflow\n"
             "print('LEVEL', logging.getLogger('mlflow.store.db.utils').getEffectiveLevel())\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**env, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert f"LEVEL {logging.WARNING}" in result.stdout
