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
