"""VGGSound and AudioSet→VGGSound: metrics, perturbations, prepare + run from the command line."""

import json

import numpy as np
import torch
from click.testing import CliRunner

from mke_experiments.cli import cli
from mke_experiments.config import apply_overrides
from mke_experiments.tasks import get_task
from mke_experiments.tasks.avsound import SoundData, av_perturbation, class_list
from mke_experiments.testing.sound_tasks import LABELS, audioset_download, vggsound_download

SMALL = ["--set", "prepare.frames=2", "--set", "prepare.size=32", "--set", "prepare.n_mels=16",
         "--set", "prepare.seconds=1.0"]


def test_specaugment_and_frame_jitter():
    cfg = apply_overrides(get_task("vggsound").default_config, ["data.freq_mask=4", "data.time_mask=10"])
    audio = torch.ones(3, 1, 16, 100)
    frames = torch.full((3, 2, 3, 8, 8), 0.5)
    a, f = av_perturbation(cfg)((audio, frames), torch.Generator().manual_seed(0))
    zero_rows = (a[:, 0] == 0).all(dim=2).sum(dim=1)  # fully masked mel bands per clip
    zero_cols = (a[:, 0] == 0).all(dim=1).sum(dim=1)  # fully masked time steps per clip
    assert (zero_rows == 4).all() and (zero_cols == 10).all()
    assert torch.equal(audio, torch.ones_like(audio))  # the input is not modified in place
    assert ((f >= 0.4) & (f <= 0.6)).all() and not torch.equal(f, frames)


def test_prepare_and_run_both_protocols_from_the_command_line(tmp_path):
    runner = CliRunner()
    vgg = vggsound_download(tmp_path / "vgg", missing=2)
    done = runner.invoke(cli, ["prepare", "vggsound", "--raw", str(vgg), "--out", str(tmp_path / "vc"), *SMALL])
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "vc" / "manifest.json").read_text())
    assert manifest["counts"]["missing"] == 2  # gone clips are counted and listed, not fatal
    done = runner.invoke(cli, ["prepare", "audioset", "--raw", str(audioset_download(tmp_path / "as")),
                               "--out", str(tmp_path / "ac"), *SMALL])
    assert done.exit_code == 0, done.output
    split = get_task("audioset-vggsound").load(SoundData(audioset=str(tmp_path / "ac"), classes="mapped"),
                                                tmp_path / "vc")
    assert split.labels.dtype == np.float32 and (split.labels.sum(axis=1) >= 1).all()  # multi-hot teacher labels
    mapped = class_list("mapped")
    assert all(label in mapped for label in LABELS)
    args = ["run", "audioset-vggsound", "--data", str(tmp_path / "vc"), "--epochs", "1", "--seeds", "0",
            "--device", "cpu", "--set", f"data.audioset={tmp_path / 'ac'}", "--set", "data.time_mask=10",
            "--set", "train.batch_size=4", *SMALL, "--out", str(tmp_path / "runs")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| audioset-vggsound | mm_student |" in result.output


def test_bad_input_is_named(tmp_path):
    runner = CliRunner()
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "vggsound.csv").write_text("---g-f_I2yQ,1,people marching,test\nbroken line without fields\n")
    done = runner.invoke(cli, ["prepare", "vggsound", "--raw", str(raw), "--out", str(tmp_path / "c")])
    assert done.exit_code == 1 and "vggsound.csv:2" in done.output
    done = runner.invoke(cli, ["prepare", "audioset", "--raw", str(raw), "--out", str(tmp_path / "c")])
    assert done.exit_code == 1 and "segments.csv" in done.output
    done = runner.invoke(cli, ["run", "audioset-vggsound", "--data", str(raw), "--epochs", "1"])
    assert done.exit_code == 1 and "data.audioset" in done.output


def _fake_cache(monkeypatch, tmp_path, labels, splits):
    """A VGGSound cache of tiny arrays (no media), as ``load_cache`` returns one (the large arrays as rows read
    on demand): ``load_cache`` is replaced, splits.json written."""
    import mke_experiments.data.avclips as avclips

    n = len(labels)
    names = [f"clip{i:02d}" for i in range(n)]
    from mke_experiments.data.rows import LazyRows

    cache = dict(labels=np.array(labels), names=np.array(names), logmel=LazyRows(np.zeros((n, 1, 4, 8), np.float16)),
                 frames=LazyRows(np.zeros((n, 1, 3, 8, 8), np.uint8)),
                 manifest=dict(params=dict(frames=1, size=8, n_mels=4, seconds=1.0)))
    monkeypatch.setattr(avclips, "load_cache", lambda folder, name="vggsound": cache)
    (tmp_path / "splits.json").write_text(splits if isinstance(splits, str) else json.dumps(splits))
    return names


def test_clips_of_classes_outside_the_list_are_counted_and_reported(monkeypatch, tmp_path):
    import pytest

    labels = [*(LABELS[i % 3] for i in range(12)), "not a vggsound class", "not a vggsound class"]
    names = [f"clip{i:02d}" for i in range(len(labels))]
    _fake_cache(monkeypatch, tmp_path, labels, {n: "test" if i % 4 == 0 else "train" for i, n in enumerate(names)})
    with pytest.warns(UserWarning, match=r"2 clip\(s\) of 1 label\(s\).*'not a vggsound class'"):
        split = get_task("vggsound").load(SoundData(val_fraction=0.0, labeled_fraction=0.3), tmp_path)
    assert len(split.labeled_alpha) + len(split.unlabeled_alpha) + len(split.test_alpha) == 12


def test_a_splits_file_that_is_not_an_object_is_named(monkeypatch, tmp_path):
    import pytest

    from mke_theory.core.errors import MKEError

    _fake_cache(monkeypatch, tmp_path, [LABELS[0]] * 4, "[\"train\", \"test\"]")
    with pytest.raises(MKEError, match="splits.json must be a JSON object"):
        get_task("vggsound").load(SoundData(), tmp_path)


def test_prepare_stft_stores_stft_magnitudes_that_a_run_reads(tmp_path):
    """prepare.spectrogram=stft (the MFH protocol's audio input): the cache holds the STFT magnitude in dB of each
    clip (257 bins, n_fft 512), not mel bands; it is recorded in the manifest and a run reads it at that shape."""
    import librosa

    from mke_experiments.data import avclips, media

    runner = CliRunner()
    vgg = vggsound_download(tmp_path / "vgg", missing=0)
    stft = [*SMALL, "--set", "prepare.spectrogram=stft"]
    done = runner.invoke(cli, ["prepare", "vggsound", "--raw", str(vgg), "--out", str(tmp_path / "vc"), *stft])
    assert done.exit_code == 0, done.output
    cache = avclips.load_cache(tmp_path / "vc", "vggsound")
    params = cache["manifest"]["params"]
    assert params["spectrogram"] == "stft" and params["n_bins"] == 257
    spectra = cache["logmel"].read(np.arange(len(cache["logmel"])))
    assert spectra.shape[1:] == (1, 257, 101)  # 1 s at a 10 ms hop
    name = str(cache["names"][0])
    clip = avclips.find_clips(vgg, [name])[name]
    _, audio = avclips.read_clip(clip, 2, 32, 16000, 1.0)
    expected = media.stft_db(audio, 160, 512)
    np.testing.assert_allclose(spectra[0].astype(np.float32), expected, atol=0.05)  # float16 in the cache
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, hop_length=160, n_mels=16)
    assert expected.shape != (1, *mel.shape)  # not the mel bands
    result = runner.invoke(cli, ["run", "vggsound", "--data", str(tmp_path / "vc"), "--epochs", "1", "--seeds", "0",
                                 "--device", "cpu", "--methods", "teacher", "--set", "train.batch_size=4", *stft])
    assert result.exit_code == 0, result.output
    mismatch = runner.invoke(cli, ["run", "vggsound", "--data", str(tmp_path / "vc"), "--epochs", "1", "--seeds", "0",
                                   "--device", "cpu", "--methods", "teacher", *SMALL,
                                   "--set", "prepare.spectrogram=logmel"])
    assert mismatch.exit_code == 1 and "spectrogram" in mismatch.output  # the cache contradicts the setting
