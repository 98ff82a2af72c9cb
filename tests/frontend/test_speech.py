"""Speech units: audio formats, exact frame timing at every rate, phones, HuBERT + codebook."""

from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from engine.job import DubSpec
from engine.speech import frame_units, load_audio, make_extractor, unit_indices
from engine.speech.audio import AudioError
from engine.speech.phones import PHONES, SILENCE

RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
         Fraction(50), Fraction(60)]


@pytest.mark.parametrize("fps", RATES, ids=lambda f: f"{float(f):.3f}")
def test_ten_minute_clip_ends_within_half_a_frame(fps):
    frames = int(600 * fps)
    spec = DubSpec(fps=fps, first_frame=1001, last_frame=1000 + frames)
    idx = unit_indices(spec, [spec.first_frame, spec.last_frame])
    true_end = (spec.last_frame - spec.first_frame) / float(fps)
    unit_end = idx[-1, 0] / 50
    assert abs(unit_end - true_end) <= 0.5 / float(fps)
    assert idx[0].tolist() == [0, int(50 / (2 * fps))]
    # a naive integer-fps mapping (what drifts in other tools) is off by seconds at 29.97
    if fps.denominator == 1001:
        naive_end = (spec.last_frame - spec.first_frame) / round(float(fps))
        assert abs(naive_end - true_end) > 0.5


def test_units_per_frame_follow_the_50hz_grid_at_25fps():
    spec = DubSpec(fps=Fraction(25), first_frame=0, last_frame=9)
    units = np.arange(20)
    got, inside = frame_units(units, spec, range(10))
    assert got.tolist() == [[2 * f, 2 * f + 1] for f in range(10)]
    assert inside.all()


def test_audio_offset_places_the_line_and_frames_outside_keep_the_fill():
    spec = DubSpec(fps=Fraction(25), first_frame=100, last_frame=124, audio_offset=0.4)
    units = np.full(10, 7)  # 0.2 s of audio starting 0.4 s in: frames 110..114
    got, inside = frame_units(units, spec, range(100, 125), spec.audio_offset, fill=-1)
    assert inside.tolist() == [False] * 10 + [True] * 5 + [False] * 10
    assert (got[inside] == 7).all() and (got[~inside] == -1).all()


@pytest.mark.parametrize("rate,channels,fmt", [(48000, 2, "WAV"), (44100, 1, "FLAC"),
                                               (22050, 6, "AIFF")])
def test_audio_in_any_rate_and_channel_count_reads_as_16k_mono(tmp_path, rate, channels, fmt):
    t = np.arange(int(rate * 0.5)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.repeat(tone[:, None], channels, axis=1)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, data, rate, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 3


def test_audio_in_a_container_reads_through_pyav(tmp_path):
    import av

    path = tmp_path / "line.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        t = np.arange(48000) / 48000
        samples = np.stack([0.3 * np.sin(2 * np.pi * 300 * t)] * 2).astype(np.float32)
        for i in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, i : i + 1024], format="fltp",
                                               layout="stereo")
            frame.sample_rate = 48000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = load_audio(path)
    assert 15000 < len(audio) < 17500
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio) - 300) < 5


def test_unreadable_audio_gets_a_clear_error(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="x.wav"):
        load_audio(bad)
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")


@pytest.fixture(scope="module")
def spoken():
    from engine.speech.audio import resample
    from engine.synth.speech import synthesize

    s = synthesize("Hello there, how are you doing today?")
    audio = resample(s.audio, s.sample_rate)
    pad = np.zeros(8000, np.float32)
    return np.concatenate([pad, audio, pad])


def test_phones_give_silence_for_silence_and_phones_for_speech(spoken):
    ext = make_extractor("phones")
    assert ext.name == "phones" and ext.vocab_size == len(PHONES) and ext.codebook_hash
    units = ext.units(spoken)
    assert len(units) == -(-len(spoken) // 320)
    assert (units[:20] == SILENCE).all() and (units[-20:] == SILENCE).all()
    speech = units[25:-25]
    assert (speech != SILENCE).mean() > 0.3
    assert len(set(speech.tolist()) - {SILENCE}) >= 5
    assert (ext.units(np.zeros(16000, np.float32)) == SILENCE).all()


def _h05_line(key: str) -> tuple[np.ndarray, np.ndarray]:
    """h05's `key` line ("text" or "pair_text") as its benchmark voice says it, at 16 kHz,
    and which 20 ms windows are loud."""
    import json
    from pathlib import Path

    from engine.speech.audio import resample
    from engine.speech.units import silent_windows
    from engine.synth.clip import speak

    manifest = Path(__file__).resolve().parents[2] / "bench" / "synth-v1" / "manifest.json"
    clip = next(c for c in json.loads(manifest.read_text())["clips"] if c["id"] == "h05")
    line = speak(clip[key], int(clip["seed"]))
    audio = resample(line.audio, line.sample_rate)
    return audio, ~silent_windows(audio)


def test_phones_lw2_hears_speech_the_default_phone_lm_calls_silence():
    """On some voices pocketsphinx's phone LM outweighs the acoustics and labels most of the
    speech silence; `phones_lw2` (LM weight 2) hears it. A model trained on one setting
    cannot load with the other: their hashes differ."""
    audio, loud = _h05_line("text")
    default, lw2 = make_extractor("phones"), make_extractor("phones_lw2")
    assert default.codebook_hash != lw2.codebook_hash and lw2.name == "phones_lw2"
    missed = {e.name: float((e.units(audio)[loud] == SILENCE).mean()) for e in (default, lw2)}
    assert missed["phones"] > 0.5, missed  # the voice the default decoder does not hear
    assert missed["phones_lw2"] < 0.25, missed
    assert (lw2.units(np.zeros(16000, np.float32)) == SILENCE).all()


def test_phones_lw2_fill_hears_more_of_a_voice_and_changes_only_its_silence():
    """h05's new line loses half its speech to silence under `phones_lw2`; the fill passes
    give phones to most of it, leave every phone `phones_lw2` heard as it was, keep quiet
    windows silence, decode the same audio the same way every time, and make a setting of
    their own that a `phones_lw2` model refuses."""
    from engine.checkpoint import CheckpointMismatch, ModelConfig, UnitsConfig, check_units
    from engine.models.config import preset as unet_preset

    audio, loud = _h05_line("pair_text")
    lw2, fill = make_extractor("phones_lw2"), make_extractor("phones_lw2_fill")
    plain, filled = lw2.units(audio), fill.units(audio)
    missed = {"lw2": float((plain[loud] == SILENCE).mean()),
              "fill": float((filled[loud] == SILENCE).mean())}
    assert missed["fill"] < missed["lw2"] - 0.1, missed
    heard = plain != SILENCE
    assert np.array_equal(filled[heard], plain[heard])
    assert (filled[~loud] == SILENCE).all()
    again = make_extractor("phones_lw2_fill")
    assert np.array_equal(fill.units(audio), filled) and np.array_equal(again.units(audio), filled)
    assert fill.name == "phones_lw2_fill" and fill.vocab_size == lw2.vocab_size
    assert fill.codebook_hash not in (lw2.codebook_hash, make_extractor("phones").codebook_hash)
    cfg = ModelConfig(kind="lsd", unet=unet_preset("lsd", "tiny", vocab_size=lw2.vocab_size),
                      units=UnitsConfig(extractor=lw2.name, vocab=lw2.vocab_size,
                                        codebook_hash=lw2.codebook_hash))
    with pytest.raises(CheckpointMismatch, match="phones_lw2_fill"):
        check_units(cfg, fill.name, fill.codebook_hash)


def test_unknown_extractor_is_named():
    with pytest.raises(ValueError, match="known: hubert, phonenet, phones"):
        make_extractor("wav2vec")


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory):
    import torch
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                       num_conv_pos_embedding_groups=2)
    path = tmp_path_factory.mktemp("hubert")
    HubertModel(cfg).eval().save_pretrained(path)
    return path


def test_codebook_build_and_hubert_units(tiny_hubert, spoken, tmp_path):
    from bridge.cli import main
    from engine.speech.hubert import Codebook, CodebookError, HubertExtractor

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "a.wav", spoken, 16000)
    sf.write(corpus / "b.flac", spoken[::-1].copy(), 16000)
    out = tmp_path / "cb.safetensors"
    rc = main(["codebook", "build", "--audio", str(corpus), "--hubert", str(tiny_hubert),
               "--clusters", "8", "--out", str(out)])
    assert rc == 0
    cb = Codebook.load(out)
    assert cb.centroids.shape == (8, 32) and 0 <= cb.silence_id < 8
    ext = make_extractor("hubert", model_dir=tiny_hubert, codebook=out)
    assert isinstance(ext, HubertExtractor)
    assert ext.vocab_size == 8 and ext.codebook_hash == cb.hash
    units = ext.units(spoken)
    assert len(units) == -(-len(spoken) // 320)
    assert (units[:20] == cb.silence_id).all()
    assert len(set(units[25:-25].tolist())) >= 2
    # the same audio gives the same units; a codebook for another model is refused
    assert (ext.units(spoken) == units).all()
    Codebook(np.zeros((4, 16), np.float32), -1, 0, False).save(tmp_path / "other.safetensors")
    with pytest.raises(CodebookError, match="another model"):
        make_extractor("hubert", model_dir=tiny_hubert, codebook=tmp_path / "other.safetensors")


def test_model_dir_records_the_hubert_codebook_and_refuses_another(tiny_hubert, spoken, tmp_path):
    from engine.checkpoint import CheckpointMismatch
    from engine.pipeline import ModelDirError, init_model_dir, load_engine
    from engine.speech.hubert import build_codebook

    sf.write(tmp_path / "a.wav", spoken, 16000)
    cb = build_codebook([tmp_path / "a.wav"], tiny_hubert, 6)
    cb.save(tmp_path / "cb.safetensors")
    model = init_model_dir(tmp_path / "m", "tiny", extractor="hubert",
                           codebook=tmp_path / "cb.safetensors")
    with pytest.raises(ModelDirError, match="HubertModel directory"):
        load_engine(model)
    engine = load_engine(model, hubert_dir=tiny_hubert)
    info = engine.info()
    assert info["extractor"] == "hubert" and info["codebook_hash"] == cb.hash
    assert engine.lsd.cfg.vocab_size == 6
    other = build_codebook([tmp_path / "a.wav"], tiny_hubert, 6, seed=1)
    other.save(model / "codebook.safetensors")  # a codebook the LSD was not trained on
    with pytest.raises(CheckpointMismatch, match="codebook mismatch"):
        load_engine(model, hubert_dir=tiny_hubert)


def test_kit_labels_follow_espeaks_timeline_and_name_an_unknown_phoneme():
    """`phonenet`'s training labels: each 50 Hz unit takes the phone spoken at its middle, a
    two-sound symbol splits its span, the end is silence, and a symbol the table lacks is
    named rather than guessed."""
    from engine.speech.phonenet import PhoneNetError, kit_labels
    from engine.speech.phones import PHONE_ID

    timeline = [(0.0, "_"), (0.1, "m"), (0.2, "ˈɔːɹ"), (0.4, "_")]
    labels = kit_labels(timeline, 0.5, 30)
    ids = [PHONE_ID[p] for p in ("M", "AO", "R")]
    assert labels[:5].tolist() == [SILENCE] * 5  # units 0-4: middles before 0.1 s
    assert labels[5:10].tolist() == [ids[0]] * 5
    assert labels[10:15].tolist() == [ids[1]] * 5 and labels[15:20].tolist() == [ids[2]] * 5
    assert (labels[20:] == SILENCE).all()
    with pytest.raises(PhoneNetError, match="'ʘ'"):
        kit_labels([(0.0, "ʘ")], 0.1, 5)


def test_every_kit_voice_speaks_only_phonemes_phonenet_can_label():
    from engine.speech.phonenet import kit_phones
    from engine.synth.clip import speak
    from engine.synth.sentences import training_sentences
    from engine.synth.speech import VOICES
    from engine.synth.tracks import voice_draw

    lines = training_sentences(60)
    voices = set()
    for seed, text in enumerate(lines):
        line = speak(text, seed)
        voices.add(voice_draw(seed).voice)
        for _, symbol in line.phonemes:
            assert kit_phones(symbol)
    assert voices == set(VOICES)


def test_phonenet_trains_from_the_command_line_and_loads_as_an_extractor(tmp_path):
    """`edidub train phonenet` writes a weights file that `make_extractor` and a model
    directory load; the hash names the weights; quiet is silence; bad files are named."""
    from bridge.cli import main
    from engine.checkpoint import CheckpointMismatch
    from engine.pipeline import DubEngine, init_model_dir
    from engine.speech.phonenet import PhoneNetError

    for seed in (0, 1):
        assert main(["train", "phonenet", "--out", str(tmp_path / f"n{seed}.safetensors"),
                     "--utterances", "20", "--steps", "3", "--seed", str(seed)]) == 0
    a = make_extractor("phonenet", weights=tmp_path / "n0.safetensors")
    again = make_extractor("phonenet", weights=tmp_path / "n0.safetensors")
    b = make_extractor("phonenet", weights=tmp_path / "n1.safetensors")
    assert a.codebook_hash == again.codebook_hash != b.codebook_hash
    assert (tmp_path / "n0.json").is_file()
    # the phonenet-only flags are refused where they would be ignored
    assert main(["train", "lsd", "--config", "c.json", "--data", "d", "--out",
                 str(tmp_path / "r"), "--seed", "3"]) == 2
    rng = np.random.default_rng(0)
    audio = np.concatenate([np.zeros(8000), rng.normal(0, 0.1, 16000)]).astype(np.float32)
    units = a.units(audio)
    assert units.shape == (75,) and units.dtype == np.int64
    assert (units[:25] == SILENCE).all() and np.array_equal(units, again.units(audio))
    assert units.max() < a.vocab_size == len(PHONES)

    model = init_model_dir(tmp_path / "m", "tiny", extractor="phonenet",
                           codebook=tmp_path / "n0.safetensors")
    assert DubEngine(model).extractor.codebook_hash == a.codebook_hash
    (model / "codebook.safetensors").write_bytes((tmp_path / "n1.safetensors").read_bytes())
    with pytest.raises(CheckpointMismatch, match="codebook"):
        DubEngine(model)
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    with pytest.raises(PhoneNetError, match="bad.safetensors"):
        make_extractor("phonenet", weights=tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="weights=FILE"):
        make_extractor("phonenet")


def test_phonenet_learns_the_kits_phones_from_a_few_lines(tmp_path):
    """A small recogniser trained briefly names most spoken windows' phones on held-out kit
    lines (chance is about 1 in 39) and calls little of the speech silence: the features,
    the labels and their timing line up."""
    from engine.train.phonenet import train_phonenet

    summary = train_phonenet(tmp_path / "n.safetensors", utterances=160, steps=150, channels=32,
                             dilations=(1, 2, 4, 1), log=lambda line: None)
    assert summary["held_out"]["speech_accuracy"] > 0.45, summary
    assert summary["held_out"]["speech_as_silence"] < 0.1, summary
