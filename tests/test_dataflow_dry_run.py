"""Every stage under ``--runner DataflowRunner --dry_run True``: translated to a Dataflow job and
packaged with ``--setup_file``, offline and without credentials.

What Beam 2.77 does in a dry run (``DataflowRunner.run_pipeline``): validates the options (project,
region, a ``gs://`` temp_location; no GCS call under ``dry_run``), builds the ``--setup_file`` sdist
locally (``python -m build --no-isolation --sdist``), translates the pipeline into a runner-API
proto and an ``apiclient.Job``, then returns before creating the Dataflow client: no credentials,
no upload to the staging location, no job. These tests fail if translation or packaging fails, if
the staged package lacks the bundled language-ID model or the recipes, or if anything tries the
network or the Dataflow service.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import tarfile
import tempfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow import dataflow_runner
from apache_beam.runners.dataflow.internal import apiclient

from mixtures import tokenizer as T
from pipelines import clean, dedup, filter, tokenize
from pipelines.options import is_dry_run, run_stage, writes_output
from tests.conftest import DATA, ROOT

# Everything a dry run needs. The project must be a valid project ID (Beam's validator rejects "p");
# temp_location must be gs://, else Beam tries to create a default bucket (a GCS call).
DRY_RUN = ["--runner", "DataflowRunner", "--dry_run", "True", "--project", "dry-run-project",
           "--region", "us-central1", "--temp_location", "gs://dry-run-bucket/tmp",
           "--setup_file", str(ROOT / "setup.py")]


def _offline_connect(self, address):
    """socket.connect that refuses every non-loopback address: the dry run must not use the network."""
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise AssertionError(f"a dry run tried the network: {address}")
    return _real_connect(self, address)


_real_connect = socket.socket.connect


def _no_service(*args, **kwargs):
    raise AssertionError("a dry run reached the Dataflow client (credentials, staging upload, job submission)")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """Network and the Dataflow service cut off; Beam's packaging temp dirs kept under tmp_path.
    Yields the list of ``apiclient.Job`` objects that each dry run translated."""
    jobs = []
    real_run = dataflow_runner.DataflowRunner.run_pipeline

    def recording_run(self, pipeline, options, pipeline_proto=None):
        result = real_run(self, pipeline, options, pipeline_proto)
        jobs.append(result.job)
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("beam_tmp")))
        mp.setattr(socket.socket, "connect", _offline_connect)
        mp.setattr(apiclient, "DataflowApplicationClient", _no_service)
        mp.setattr(apiclient, "get_service_credentials", _no_service)
        mp.setattr(dataflow_runner.DataflowRunner, "run_pipeline", recording_run)
        yield jobs


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    """A small real clean-stage output (DirectRunner) for the later stages to read."""
    out = tmp_path_factory.mktemp("inputs") / "clean"
    stats = clean.main(["--input", str(DATA / "finance" / "reuters_finance.jsonl.gz"), "--output", str(out),
                        "--domain", "domain"])
    assert stats["output"] > 0
    return out


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory, finance_docs):
    cfg = T.TokenizerConfig(type="bpe", vocab_size=500)
    tok = T.train_tokenizer([d["text"] for d in finance_docs[:50]], cfg)
    return T.save_tokenizer(tok, tmp_path_factory.mktemp("tok"), cfg)


def staged(job) -> dict[str, str]:
    """staged name -> local path of every artifact the job would upload to its staging location."""
    out = {}
    for env in job.proto_pipeline.components.environments.values():
        for dep in env.dependencies:
            path = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
            name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name
            out[name] = path
    return out


def assert_translated_and_packaged(job, min_transforms: int = 3):
    assert job.google_cloud_options.staging_location.startswith("gs://dry-run-bucket/tmp/")
    assert len(job.proto_pipeline.components.transforms) >= min_transforms
    artifacts = staged(job)
    assert "workflow.tar.gz" in artifacts, artifacts  # the --setup_file package
    with tarfile.open(artifacts["workflow.tar.gz"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("setup.py", "pyproject.toml", "filters/models/lid.176.ftz", "filters/models/finance.ftz",
                   "mixtures/recipes/demo.yaml",
                   "pipelines/options.py", "filters/langid.py"):
        assert needed in names, f"{needed} missing from the staged package"


def test_build_and_wheel_installed():
    """Beam packages --setup_file with `python -m build --no-isolation --sdist` (stager.py) and falls
    back to the deprecated `setup.py sdist` without them; `make setup` installs both (test extra)."""
    assert importlib.util.find_spec("build") and importlib.util.find_spec("wheel")


def test_is_dry_run_only_where_the_runner_honours_it():
    assert is_dry_run(PipelineOptions(DRY_RUN))
    assert is_dry_run(PipelineOptions(["--runner", "dataflow", "--dry_run", "True"]))
    assert not writes_output(PipelineOptions(DRY_RUN))
    assert not is_dry_run(PipelineOptions(DRY_RUN[2:] + ["--runner", "DirectRunner"]))
    assert not is_dry_run(PipelineOptions(["--runner", "DataflowRunner"]))
    assert writes_output(PipelineOptions([]))


def test_run_stage_dry_run_packages_without_running(offline, tmp_path, capsys):
    """run_stage itself (independent of the stage mains): translation + packaging, no stats read."""
    def build(p):
        _ = p | beam.Create(["a b", "c"]) | beam.FlatMap(str.split) | beam.combiners.Count.PerElement()

    result = run_stage("probe", build, PipelineOptions(DRY_RUN), str(tmp_path / "never"))
    assert result == {"stage": "probe", "dry_run": True}
    assert "probe: dry run: the pipeline was translated and packaged, nothing ran" in capsys.readouterr().out
    assert_translated_and_packaged(offline[-1])
    assert not (tmp_path / "never").exists()


def _check_stage(main, argv, out: Path, stage: str, jobs, capsys):
    before = len(jobs)
    result = main([*argv, "--output", str(out), *DRY_RUN])
    assert result["dry_run"] is True and result["stage"] == stage
    assert f"{stage}: dry run" in capsys.readouterr().out
    assert len(jobs) == before + 1
    assert_translated_and_packaged(jobs[-1])
    assert not out.exists()  # nothing ran, nothing was prepared: a dry run leaves no trace


def test_clean_dry_run(offline, tmp_path, capsys):
    _check_stage(clean.main, ["--input", str(DATA / "finance" / "*.jsonl.gz"), "--domain", "domain"],
                 tmp_path / "clean", "clean", offline, capsys)


def test_filter_dry_run(offline, cleaned, tmp_path, capsys):
    _check_stage(filter.main, ["--input", str(cleaned), "--config", str(ROOT / "configs/filter/default.yaml")],
                 tmp_path / "filter", "filter", offline, capsys)


def test_filter_dry_run_with_decontamination_and_route(offline, cleaned, tmp_path, capsys):
    """The evaluation n-gram index travels as a side input and the bundled finance model in the package."""
    evals = tmp_path / "evals.jsonl"
    evals.write_text('{"text": "What was the net income of the company in the quarter ended in December 2018?"}\n')
    config = tmp_path / "filter.yaml"
    config.write_text((ROOT / "configs/filter/demo.yaml").read_text() + f"decontaminate:\n  sets:\n"
                      f"    - {{name: qa, path: {evals}}}\n")
    _check_stage(filter.main, ["--input", str(cleaned), "--config", str(config)], tmp_path / "filter", "filter",
                 offline, capsys)


def test_dedup_dry_run(offline, cleaned, tmp_path, capsys):
    _check_stage(dedup.main, ["--input", str(cleaned), "--cross-source"], tmp_path / "dedup", "dedup", offline,
                 capsys)


def test_tokenize_dry_run(offline, cleaned, tokenizer_json, tmp_path, capsys):
    _check_stage(tokenize.main, ["--input", str(cleaned), "--tokenizer", str(tokenizer_json)],
                 tmp_path / "tokens", "tokenize", offline, capsys)


@pytest.mark.parametrize("stage", ["clean", "dedup"])
def test_readme_commands_with_gs_paths_dry_run_offline(offline, stage, capsys):
    """The README's commands as written (gs:// inputs and outputs): remote inputs are not listed under a
    dry run, so no credentials are needed; the job is still translated and packaged."""
    if stage == "clean":
        result = clean.main(["--input", "gs://dry-run-bucket/raw/finance/*.jsonl.gz", "--output",
                             "gs://dry-run-bucket/clean/finance", "--domain", "domain", *DRY_RUN])
    else:
        result = dedup.main(["--input", "gs://dry-run-bucket/filter/finance", "--input",
                             "gs://dry-run-bucket/filter/general", "--output", "gs://dry-run-bucket/dedup",
                             "--cross-source", *DRY_RUN])
    assert result == {"stage": stage, "dry_run": True}
    assert "remote inputs are not listed" in capsys.readouterr().out
    assert_translated_and_packaged(offline[-1])


# ----------------------------------------------------------------------------- a whole run: run.orchestrator --dry-run

def _run_config(src: Path, tmp_path: Path, **changes) -> Path:
    """A run config of the repository with its work directory under ``tmp_path`` (paths stay relative)."""
    import yaml

    cfg = {**yaml.safe_load(src.read_text()), "work_dir": str(tmp_path / "work"), **changes}
    path = tmp_path / src.name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_dataflow_config_is_the_demo_with_dataflow_options():
    import yaml

    demo = yaml.safe_load((ROOT / "configs/runs/demo.yaml").read_text())
    dataflow = yaml.safe_load((ROOT / "configs/runs/dataflow.yaml").read_text())
    assert {k for k in demo.keys() | dataflow.keys() if demo.get(k) != dataflow.get(k)} == {"work_dir", "beam"}
    assert dataflow["beam"][:2] == ["--runner", "DataflowRunner"] and "--setup_file" in dataflow["beam"]


def test_whole_run_dry_run_translates_one_job_per_beam_stage_offline(offline, tmp_path, capsys, monkeypatch):
    """configs/runs/dataflow.yaml --dry-run: validated, then clean, filter, dedup and tokenize each translated
    and packaged once on the DataflowRunner (every source in the clean and filter jobs; dedup and tokenize
    with their planned inputs, which do not exist), offline; the plan printed; nothing written."""
    from run import orchestrator as run

    monkeypatch.chdir(ROOT)  # the config's paths (data/, ./setup.py) are relative to the repository root
    config = _run_config(ROOT / "configs/runs/dataflow.yaml", tmp_path)
    before = len(offline)
    assert run.main(["--config", str(config), "--dry-run"]) == []
    jobs = offline[before:]
    assert len(jobs) == 4  # the Beam stages, not sources x stages (12 x 2 + 2 before)
    sources = [s["name"] for s in run.load_run_config(config, remote_inputs=False).sources]
    for job, stage in zip(jobs, ("clean", "filter", "dedup", "tokenize")):
        assert len(job.proto_pipeline.components.transforms) >= 3
        assert "workflow.tar.gz" in staged(job)  # the --setup_file package (its contents: the tests above)
        labels = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
        if stage in ("clean", "filter"):  # one labelled branch per source, labels from the source names
            assert {f"{stage}[{name}]" for name in sources} <= labels
    out = capsys.readouterr().out
    assert "run: dry run of" in out and "4 Beam jobs on DataflowRunner (each translated and packaged" in out
    for k, stage in enumerate(("clean", "filter", "dedup", "tokenize"), start=1):
        assert f"  job {k}: {stage}" in out
    assert "local steps (on this machine, not Beam): tokenizer, mix, train, export, report" in out
    assert not (tmp_path / "work").exists()


def test_demo_config_dry_run_plans_four_jobs_with_measured_bytes_and_costs(tmp_path, capsys, monkeypatch):
    """DirectRunner: planned only (Beam translates only for Dataflow), with the same jobs, bytes and costs."""
    import glob

    from pipelines import costs
    from run import orchestrator as run

    monkeypatch.chdir(ROOT)
    config = _run_config(ROOT / "configs/runs/demo.yaml", tmp_path)
    cfg = run.load_run_config(config, remote_inputs=False)
    jobs = run.plan_run(cfg)
    assert [j["stage"] for j in jobs] == ["clean", "filter", "dedup", "tokenize"]
    assert len(jobs[0]["steps"]) == len(jobs[1]["steps"]) == len(cfg.sources) == 12
    files = [p for s in cfg.sources for pattern in s["inputs"] for p in glob.glob(pattern)]
    assert jobs[0]["bytes"] == sum(Path(p).stat().st_size for p in files) and not jobs[0]["unknown"]
    docs = sum(costs.text_bytes(p, Path(p).stat().st_size) for p in files) / costs.BYTES_PER_DOC
    for job in jobs:
        assert job["cost"].documents == pytest.approx(docs)
        assert job["cost"].vcpu_hours == pytest.approx(docs * costs.CPU_MS_PER_DOC[job["stage"]] / 3.6e6)
        assert not job["translated"]
    assert jobs[2]["cost"].shuffle_gb > 0 and jobs[0]["cost"].shuffle_gb == 0
    out = capsys.readouterr().out
    assert "4 Beam jobs on DirectRunner (planned only" in out
    assert run.main(["--config", str(config), "--dry-run", "--until", "filter"]) == []
    out = capsys.readouterr().out
    assert "2 Beam jobs on DirectRunner" in out and "local steps" not in out
    assert not (tmp_path / "work").exists()


def test_remote_inputs_are_unknown_bytes_and_never_listed(offline, tmp_path, capsys, monkeypatch):
    from run import orchestrator as run

    monkeypatch.chdir(ROOT)
    config = _run_config(ROOT / "configs/runs/demo.yaml", tmp_path, sources=[
        {"name": "web", "domain": "general", "inputs": ["gs://dry-run-bucket/raw/web/*.jsonl.gz"]},
        {"name": "reuters", "domain": "domain", "inputs": ["data/finance/reuters_finance.jsonl.gz"]}])
    jobs = run.plan_run(run.load_run_config(config, remote_inputs=False), until="clean")
    assert [j["stage"] for j in jobs] == ["clean"]
    assert jobs[0]["unknown"] == ["gs://dry-run-bucket/raw/web/*.jsonl.gz"]
    assert jobs[0]["bytes"] == (ROOT / "data/finance/reuters_finance.jsonl.gz").stat().st_size
    assert "1 remote input(s) of unknown size" in capsys.readouterr().out


@pytest.mark.parametrize("beam, message", [
    (["--runner", "DataflowRunner", "--region", "us-central1", "--temp_location", "gs://b/tmp"],
     "a DataflowRunner dry run needs --project"),
    (["--runner", "DataflowRunner", "--project", "dry-run-project", "--region", "us-central1",
      "--temp_location", "work/beam-tmp"], "must be a gs:// path"),
])
def test_dataflow_dry_run_without_its_options_exits_2_before_any_work(tmp_path, capsys, monkeypatch, beam, message):
    from run import orchestrator as run

    monkeypatch.chdir(ROOT)
    config = _run_config(ROOT / "configs/runs/dataflow.yaml", tmp_path, beam=beam)
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(config), "--dry-run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "work").exists()


def test_the_readme_cost_table_is_the_cost_model_in_code():
    """README "Cost model per stage" quotes pipelines/costs.py: CPU per document and 1B-document vCPU-hours."""
    import re

    from pipelines import costs

    readme = (ROOT / "README.md").read_text()
    for stage in costs.BEAM_STAGES:
        row = re.search(rf"^\| {stage} \| ([0-9.]+) ms[^|]*\|[^|]*\|[^|]*\|[^|]*\| ~([0-9,]+)", readme, re.M)
        assert row, stage
        assert float(row.group(1)) == costs.CPU_MS_PER_DOC[stage]
        hours = costs.vcpu_hours(stage, costs.README_DOCS)
        assert abs(int(row.group(2).replace(",", "")) - hours) <= 0.05 * hours, (stage, hours)
