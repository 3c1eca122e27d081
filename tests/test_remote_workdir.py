"""A remote work directory (issue 23): ``work_dir: gs://bucket/run`` on any Beam filesystem. The test registers a
Beam filesystem for a scheme of its own, ``fakegcs://``, that keeps its objects in a temporary directory (no
directories: an object store), and runs the demo config on the DirectRunner with its work directory there, from
a clean current directory. Any output written with ``os``/``open``/``pathlib`` on the work-dir path would land
in a local ``fakegcs:`` directory, or fail: the test looks for both."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from apache_beam.io.filesystem import BeamIOError, FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem

from core.workdir import CHECKSUMS, ChecksumError, RemotePath, read_checksums, stage_mixture
from tests.conftest import ROOT
from tests.test_dataflow_dry_run import offline  # noqa: F401  (the network and Dataflow's client cut off)

SCHEME = "fakegcs"


class FakeGcsFileSystem(LocalFileSystem):
    """``fakegcs://bucket/key`` -> ``FakeGcsFileSystem.root/bucket/key``. Beam finds this subclass of
    ``FileSystem`` as soon as this module is imported (``FileSystems.get_filesystem`` walks the subclasses), in
    this process, where the DirectRunner runs the pipelines."""

    root: Path | None = None

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    # the translations: a URL in, a local path to the parent's code; a local path out, a URL again
    def _local(self, url: str) -> str:
        assert self.root is not None, "FakeGcsFileSystem.root is not set"
        assert url.startswith(f"{SCHEME}://"), url
        return os.path.join(self.root, url[len(SCHEME) + 3:])

    def _url(self, local: str) -> str:
        return f"{SCHEME}://" + os.path.relpath(local, self.root).replace(os.sep, "/")

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path: str) -> tuple[str, str]:
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def _url_dirname(self, url_or_path: str) -> str:
        return self.split(url_or_path)[0]

    def mkdirs(self, path: str) -> None:
        pass  # (an object store has no directories)

    def _list(self, dir_or_prefix: str):
        root = self._local(dir_or_prefix)
        for dirpath, _, files in os.walk(root):
            for name in files:
                local = os.path.join(dirpath, name)
                yield FileMetadata(self._url(local), os.path.getsize(local), os.path.getmtime(local))

    def create(self, path, *args, **kwargs):
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def copy(self, sources, destinations):
        for d in destinations:
            os.makedirs(os.path.dirname(self._local(d)), exist_ok=True)
        super().copy([self._local(s) for s in sources], [self._local(d) for d in destinations])

    def rename(self, sources, destinations):
        for d in destinations:
            os.makedirs(os.path.dirname(self._local(d)), exist_ok=True)
        super().rename([self._local(s) for s in sources], [self._local(d) for d in destinations])

    def exists(self, path: str) -> bool:
        return os.path.exists(self._local(path))

    def size(self, path: str) -> int:
        return os.path.getsize(self._local(path))

    def last_updated(self, path: str) -> float:
        return os.path.getmtime(self._local(path))

    def checksum(self, path: str) -> str:
        return str(self.size(path))

    def metadata(self, path: str) -> FileMetadata:
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        missing = [p for p in paths if not os.path.exists(self._local(p))]
        if missing:
            raise BeamIOError("Delete operation failed", {p: FileNotFoundError(p) for p in missing})
        for p in paths:
            local = self._local(p)
            shutil.rmtree(local) if os.path.isdir(local) else os.remove(local)


@pytest.fixture
def bucket(tmp_path):
    FakeGcsFileSystem.root = tmp_path / "objects"
    FakeGcsFileSystem.root.mkdir()
    yield FakeGcsFileSystem.root
    FakeGcsFileSystem.root = None


def local_tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def derived_demo(tmp: Path, work_dir: str) -> Path:
    """configs/runs/demo.yaml with its work directory at ``work_dir``, its paths made absolute (the run starts
    in a clean directory), three of its sources, a small BPE tokenizer and mixture, 4 training steps, 1 rank."""
    cfg = yaml.safe_load((ROOT / "configs" / "runs" / "demo.yaml").read_text(encoding="utf-8"))
    keep = {"sec_10q", "reuters", "austen"}
    cfg["sources"] = [s for s in cfg["sources"] if s["name"] in keep]
    for s in cfg["sources"]:
        s["inputs"] = [str(ROOT / p) for p in s["inputs"]]
        s.pop("mix", None)
    cfg["work_dir"] = work_dir
    cfg["filter"]["config"] = str(ROOT / cfg["filter"]["config"])
    cfg["tokenizer"] = {"config": str(ROOT / cfg["tokenizer"]["config"]), "type": "bpe", "vocab_size": 400,
                        "sample_bytes": 200_000}
    cfg["mix"].update({"target": {"tokens": 20_000}, "shard_tokens": 5_000, "allow_shortfall": True})
    cfg["train"] = {"config": str(ROOT / cfg["train"]["config"]), "nproc_per_node": 1,
                    "local_cache": str(tmp / "cache"),
                    "overrides": {"train.steps": 4, "train.ckpt_every": 2, "train.eval_every": 2,
                                  "train.eval_tokens": 1024, "train.log_every": 2}}
    path = tmp / "remote-demo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
def test_the_demo_runs_with_its_work_directory_on_a_remote_filesystem(tmp_path, bucket, monkeypatch):
    from run import orchestrator

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    config = derived_demo(tmp_path, f"{SCHEME}://bucket/run")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))  # train.run
    done = dict(orchestrator.main(["--config", str(config)]))
    assert done and set(done.values()) == {"ran"}
    assert "report" in done and "export" in done

    # every output is in the bucket, under the work directory; nothing named like it appears locally
    assert local_tree(cwd) == [], "a work-dir path was written as a local path"
    assert not any(SCHEME in p.name or p.name == "bucket" for p in ROOT.iterdir())
    assert [p.name for p in bucket.iterdir()] == ["bucket"] and [p.name for p in (bucket / "bucket").iterdir()] == [
        "run"]
    work = bucket / "bucket" / "run"
    top = {p.name for p in work.iterdir()}
    assert {"clean", "filter", "dedup", "tokenizer", "tokens", "mix", "train", "hf", ".run", "recipe.yaml",
            "run.yaml", "report.html"} <= top
    for source in ("sec_10q", "reuters", "austen"):
        assert list((work / "clean" / source).glob("train-*.parquet")), source
        assert (work / ".run" / f"filter-{source}.json").is_file()
    assert (work / "tokenizer" / "tokenizer.json").is_file() and list((work / "tokens").rglob("part-*"))
    assert (work / "mix" / "manifest.json").is_file() and (work / "mix" / "DATASET_CARD.md").is_file()
    manifest = (work / "mix" / "manifest.json").read_text(encoding="utf-8")
    assert f"{SCHEME}://bucket/run/mix/tokenizer.json" in manifest and str(tmp_path) not in manifest
    assert list((work / "train").rglob("metrics.jsonl")) and list((work / "hf").glob("*.safetensors"))
    assert "<html" in (work / "report.html").read_text(encoding="utf-8")[:500].lower()

    # the trainer read a local copy of the mixture, checked against the sums the mixer recorded
    staged = tmp_path / "cache" / "mix"
    sums = read_checksums((work / "mix" / CHECKSUMS).read_text(encoding="utf-8"))
    assert any(rel.startswith("train/") for rel in sums) and "tokenizer.json" in sums
    for rel in [*sums, "manifest.json"]:
        assert filecmp.cmp(staged / rel, work / "mix" / rel, shallow=False), rel

    # a second run: every step up to date (the records and outputs are read back through the filesystem)
    again = dict(orchestrator.main(["--config", str(config)]))
    assert {k: v for k, v in again.items() if k != "report"} == {k: "skipped" for k in done if k != "report"}
    assert local_tree(cwd) == []

    # a verified copy is re-used; a corrupted one is fetched again; a mixture that does not match is an error
    assert stage_mixture(RemotePath(f"{SCHEME}://bucket/run/mix"), staged) == staged
    first = next(rel for rel in sums if rel.startswith("train/"))
    (staged / first).write_bytes(b"corrupt")
    stage_mixture(RemotePath(f"{SCHEME}://bucket/run/mix"), staged)
    assert filecmp.cmp(staged / first, work / "mix" / first, shallow=False)
    (work / "mix" / first).write_bytes(b"changed after mixing")
    with pytest.raises(ChecksumError, match="does not match"):
        stage_mixture(RemotePath(f"{SCHEME}://bucket/run/mix"), tmp_path / "other-cache")


def test_the_dataflow_dry_run_with_a_gs_work_dir_works_offline(offline, capsys, monkeypatch):  # noqa: F811
    """configs/runs/dataflow.yaml as it is, its work directory in a bucket: validated, then every Beam stage
    translated and packaged with the network and the Dataflow service cut off; nothing written."""
    from run import orchestrator

    work_dir = yaml.safe_load((ROOT / "configs" / "runs" / "dataflow.yaml").read_text(encoding="utf-8"))["work_dir"]
    assert work_dir.startswith("gs://")
    monkeypatch.chdir(ROOT)  # the config's paths (data/, ./setup.py) are relative to the repository root
    before = len(offline)
    assert orchestrator.main(["--config", "configs/runs/dataflow.yaml", "--dry-run"]) == []
    assert len(offline) - before == 4  # clean, filter, dedup, tokenize: one job each
    out = capsys.readouterr().out
    assert f"inputs: {work_dir}/clean/sec_10q, " in out and f"inputs: {work_dir}/dedup\n" in out
    assert not any(p.name.startswith(("gs:", "your-bucket")) for p in ROOT.iterdir())


def test_a_work_dir_without_a_beam_filesystem_is_one_error_line(tmp_path):
    config = derived_demo(tmp_path, "nosuchscheme://bucket/run")
    proc = subprocess.run([sys.executable, "-m", "run", "--config", str(config), "--check"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nosuchscheme://bucket/run" in errors[0], proc.stderr
    assert local_tree(tmp_path) == ["remote-demo.yaml"]
