"""The settings of `tortuner prepare`: one field per flag (see `config_args`), and what of them an input's result
depends on (its fingerprint, so that changed settings redo finished inputs)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tortuner.config_args import arg, float_or_off
from tortuner.data.asr import BACKENDS
from tortuner.data.filters import FILTERS
from tortuner.data.segment import SegmentConfig


def _threshold(default: float | None, help: str):
    """A filter threshold flag: a number, or `off` (None) to turn that filter off."""
    return arg(default, help, parse=float_or_off, metavar="X|off")


@dataclass
class PrepareConfig:
    """Every field is a `tortuner prepare` flag of the same name. A threshold of None turns that filter off."""

    inputs: list[str] = arg(help="audio files or folders (searched recursively)", factory=list, metavar="INPUT")
    out: str = arg("", "dataset folder to create or resume (wavs/, train.txt, val.txt, clips.jsonl, report.json/png)")
    speaker: str | None = arg(None, "speaker label for every clip (default: the name of the folder each file is in)")
    workers: int = arg(0, "inputs processed in parallel, one process each (0: one, in this process); with --ray: "
                          "Ray actors (0: one per CPU of the cluster)")
    ray: str = arg("", "process the inputs on Ray: --ray alone (= local) starts a cluster on this machine, 'auto' or "
                       "HOST:PORT joins a running one (pip install 'tortuner[ray]'; --out on storage every node sees)",
                  bare="local", metavar="ADDRESS")
    # segmentation
    vad_threshold: float = arg(0.5, "silero-vad speech probability that starts speech")
    min_silence: float = arg(0.5, "silences at least this long (s) split the recording")
    min_seconds: float = arg(5.0, "shortest kept clip (s)")
    max_seconds: float = arg(20.0, "longest kept clip (s)")
    max_pause: float = arg(2.0, "longest silence (s) allowed inside a clip when merging short utterances")
    pad: float = arg(0.2, "silence kept around each clip's speech (s)")
    window_seconds: float = arg(3.0, "utterances are cut at inner pauses into pieces of about this length (s), each "
                                     "scored before merging, so that a clip never straddles a change of condition "
                                     "(0: whole utterances)")
    max_voice_change: float = arg(0.25, "neighbouring pieces whose voices are further apart than this (1 - cosine of "
                                       "mean d-vectors) are not joined into one clip (with --max-speaker-change)")
    # filters (see filters.FILTERS and docs/prepare.md for the calibration)
    max_clipped_pct: float | None = _threshold(0.02, "drop clips with more than this percent of samples clipped")
    min_bandwidth_hz: float | None = _threshold(6000.0, "drop narrow-band clips (phone, low bitrate) below this "
                                                        "bandwidth")
    max_music: float | None = _threshold(0.14, "drop clips whose music score (held tonal peaks between words) is "
                                               "above this")
    min_snr_db: float | None = _threshold(15.0, "drop clips with a lower speech-to-noise ratio (dB)")
    max_rt60_s: float | None = _threshold(0.35, "drop clips whose estimated reverberation time (s) is above this")
    max_speaker_change: float | None = _threshold(0.22, "drop clips whose two voice clusters are further apart than "
                                                        "this (several speakers)")
    min_dnsmos_bak: float | None = _threshold(None, "drop clips whose DNSMOS background score is below this (slow; "
                                                    "catches voices talking over the speaker; 3.0 is a reasonable "
                                                    "value)")
    reference_voice: list[str] = arg(help="clips/folders of the target speaker: keep only clips that sound like them",
                                     factory=list, metavar="CLIP")
    min_reference_similarity: float | None = _threshold(0.75, "with --reference-voice: minimum cosine similarity to "
                                                              "the reference")
    # transcription
    asr: str = arg("pocketsphinx", "transcription backend", choices=BACKENDS)
    asr_model: str | None = arg(None, "faster-whisper model folder / openai-whisper .pt file")
    language: str = arg("en", "language code passed to Whisper")
    transcripts: str | None = arg(None, "NAME|text file with your own transcripts (NAME: clip name or source file "
                                        "name); skips ASR")
    max_text_tokens: int = arg(300, "drop clips whose transcript has more TorToiSe text tokens than this")
    # output
    sample_rate: int = arg(22050, "sample rate of the written wavs")
    val_fraction: float = arg(0.05, "share of kept clips written to val.txt")

    def segment_config(self) -> SegmentConfig:
        return SegmentConfig(threshold=self.vad_threshold, min_silence=self.min_silence, min_speech=0.25,
                             min_seconds=self.min_seconds, max_seconds=self.max_seconds, max_pause=self.max_pause,
                             pad=self.pad)

    def thresholds(self) -> dict[str, float | None]:
        """Threshold per filter flag (None: off); the reference-voice filter is off without a reference voice."""
        t = {f.flag: getattr(self, f.flag) for f in FILTERS}
        if not self.reference_voice:
            t["min_reference_similarity"] = None
        return t

    def fingerprint(self) -> str:
        """Hash of every setting that changes an input's result (so changed settings redo finished inputs)."""
        d = dataclasses.asdict(self)
        for k in ("inputs", "out", "workers", "ray"):
            d.pop(k)
        d["transcripts_mtime"] = Path(self.transcripts).stat().st_mtime_ns if self.transcripts else None
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
