#!/usr/bin/env python3
"""Generate emocycle's simulated emotional-speech corpus.

Speech is synthesised with espeak-ng (labelled and source parts) and flite
(cross-corpus part); emotions are rendered by prosody after Murray & Arnott
(1993); speakers differ in baseline voice, expressivity and recording channel.
Functionals are extracted with the openSMILE library (PyPI ``opensmile``,
IS10 paralinguistic set, 1582 features in the emobase2010 layout) and written
in SMILExtract's ``-csvoutput`` layout, gzip-compressed deterministically.

Everything random comes from numpy generators seeded by (seed, part, index),
so the output does not depend on the number of worker processes or on the
order in which utterances are rendered. See docs/corpus.md.

Usage: generate_corpus.py --out fixtures/corpus [--seed N] [--difficulty D]
       [--jobs N] [--parts labelled,source,crosscorpus]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

SR = 16000  # every utterance is resampled to 16 kHz, 16 bit, like IEMOCAP
DEFAULT_SEED = 2019
# The one difficulty knob, tuned so that LOSO logistic regression on the
# labelled part lands at 55-65 % UAR (see docs/corpus.md and difficulty.py).
DEFAULT_DIFFICULTY = 0.75

PART_CODES = {"labelled": 1, "source": 2, "crosscorpus": 3}

# ---------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------

# Carrier sentences of the labelled corpus: semantically neutral, every one is
# spoken in every emotion (as in acted corpora such as Emo-DB).
LABELLED_SENTENCES = [
    "The boxes are standing in the kitchen, next to the old table.",
    "I will be there at nine, after I drop off the car.",
    "She put the letter on the desk and went back to work.",
    "We talked about it yesterday, on the way to the station.",
    "The meeting was moved to Thursday, in the afternoon.",
    "He said the train leaves at seven, from platform four.",
    "They painted the fence last week, before the rain came.",
    "You can leave the keys on the shelf, by the front door.",
    "My brother bought a new phone, and it arrived today.",
    "The shop on the corner closes early, on Sundays.",
    "I found the papers in the drawer, under the blue folder.",
    "We are going to visit my parents, at the end of the month.",
    "The dog is sleeping on the sofa, in the living room.",
    "It took us three hours to get here, with all the traffic.",
    "She is moving to another city, next spring.",
    "The results came back this morning, from the office.",
    "I have never seen this room before, in my whole life.",
    "He is waiting outside, in the car.",
    "They told me the house was sold, two days ago.",
    "We should call them tonight, after dinner.",
    "The window was open all night, and the room is cold.",
    "You said you would bring the tickets, for the show.",
    "The package was left at the neighbours, on Monday.",
    "I read the whole report, from the first page to the last.",
    "Our flight lands at midnight, in the rain.",
    "She told me about the job, at the new company.",
    "The car is parked behind the building, near the gate.",
    "I gave him the money, and he walked away.",
    "They are selling the old piano, at the weekend.",
    "We waited for an hour, and nobody came.",
    "The lights went out at eight, in the whole street.",
    "He answered the phone, and then he left the room.",
]

# Cross-corpus (MSP-IMPROV role): other sentences, other synthesiser.
CROSS_SENTENCES = [
    "I did not know that you were coming over tonight.",
    "The printer on the second floor is out of paper again.",
    "Can you tell me where you put the charger?",
    "My sister called, and she wants to see the pictures.",
    "The bus was late, so I walked the rest of the way.",
    "Your order will be ready tomorrow, around noon.",
    "We have a test on Friday, in the big hall.",
    "He moved the couch, and now the room looks different.",
    "I think the store has already closed for today.",
    "The coffee machine in the lobby is working again.",
    "You left your jacket in my car, last night.",
    "They changed the schedule, without telling anyone.",
    "The garden looks different, after the storm.",
    "I just got an email from the landlord.",
    "We are having pasta for dinner, again.",
    "The concert starts at eight, and we have seats in the back.",
    "She finished the project, two weeks early.",
    "I need to borrow your bike, for the afternoon.",
    "The library is open late, on Wednesdays.",
    "My friend is getting married, in the summer.",
]

# Source corpus (TEDLIUM role): lecture-like sentences from a small grammar.
_SRC_OPEN = [
    "Today I want to talk about", "Let me tell you about", "We often forget",
    "Most people never think about", "For a long time I studied",
    "The question is really about", "What I learned from", "Think for a moment about",
    "A few years ago I started looking at", "Nobody really understands",
    "Scientists have measured", "My work is about", "It turns out that we can change",
    "The story begins with", "We spent ten years mapping",
]
_SRC_TOPIC = [
    "the way cities grow", "how children learn to read", "the oceans and their currents",
    "the history of money", "the cells in our brains", "the cost of cheap energy",
    "the design of public spaces", "the way we sleep", "small farms in dry regions",
    "the music of the streets", "how languages change", "the bacteria inside us",
    "old maps and new data", "the light from distant stars", "how we make decisions",
    "the future of public transport", "the forests in the north", "the price of water",
]
_SRC_TAIL = [
    "and why it matters for all of us.", "and what it means for the next generation.",
    "and the numbers are surprising.", "in a very simple way.", "and it changed my mind.",
    "because the data tells a different story.", "and I think we can do better.",
    "and how it connects to everyday life.", "even though it sounds complicated.",
    "and what we can learn from it.", "and it is happening right now.",
    "and the answer is not what you expect.",
]

# ---------------------------------------------------------------------------
# Voices
# ---------------------------------------------------------------------------

LABELLED_VOICES = {  # session -> (female espeak voice, male espeak voice)
    1: ("en-us+f1", "en-us+m1"),
    2: ("en-us+f2", "en-us+m2"),
    3: ("en-us+f3", "en-us+m3"),
    4: ("en-us+f4", "en-us+m4"),
    5: ("en-us+f5", "en-us+m5"),
}

SOURCE_ACCENTS = ["en", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-rp",
                  "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us"]
SOURCE_VARIANTS_F = ["Annie", "linda", "steph", "belinda", "aunty", "Alicia", "Andrea",
                     "anika", "f1", "f2", "f3", "f4", "f5"]
SOURCE_VARIANTS_M = ["Alex", "Andy", "michael", "paul", "robert", "david", "john", "max",
                     "quincy", "edward", "m6", "m7", "m8", "norbert", "travis", "victor",
                     "benjamin", "caleb", "Lee", "iven"]

# flite voices for the cross-corpus part: (voice, gender, natural f0 mean, f0 sd)
CROSS_SPEAKERS = [
    # session 1..6, (female, male)
    (("slt", 185.0), ("awb", 105.0)),
    (("slt", 215.0), ("kal16", 100.0)),
    (("slt", 170.0), ("awb", 125.0)),
    (("slt", 235.0), ("kal", 115.0)),
    (("slt", 200.0), ("kal16", 130.0)),
    (("slt", 225.0), ("awb", 95.0)),
]

# ---------------------------------------------------------------------------
# Emotion prosody (Murray & Arnott 1993), at full expression.
#   rate: % change of speaking rate; pitch: % change of mean F0 (espeak SSML
#   pitch units); range: % change of F0 range; gain: dB; tilt: high-shelf dB
#   (vocal effort / brightness); pause: extra ms of internal pause.
# ---------------------------------------------------------------------------
EMOTION_PROFILES = {
    "neu": dict(rate=0.0, pitch=0.0, range=0.0, gain=0.0, tilt=0.0, pause=0.0),
    "ang": dict(rate=22.0, pitch=25.0, range=60.0, gain=7.0, tilt=5.0, pause=-100.0),
    "hap": dict(rate=10.0, pitch=45.0, range=80.0, gain=3.0, tilt=2.0, pause=-50.0),
    "sad": dict(rate=-22.0, pitch=-25.0, range=-45.0, gain=-6.0, tilt=-4.0, pause=350.0),
}
# per-utterance random variation (standard deviations) at difficulty 1
JITTER_SD = dict(rate=6.0, pitch=8.0, range=15.0, gain=2.0, tilt=1.5, pause=100.0)


def knob(difficulty: float) -> tuple[float, float]:
    """The single difficulty knob d -> (emotion effect scale, nuisance scale).

    d = 0 is the textbook corpus: every speaker at the voice's default
    baseline, expressivity 1, every utterance at full intensity, no random
    jitter, a clean identical channel. As d grows, speaker baselines,
    expressivity, per-utterance intensity and jitter and the channel
    differences (filters, level, room, noise) are scaled in linearly (all of
    them drawn once from the seed, so d only scales them), and the emotional
    effect itself shrinks a little.
    """
    d = float(difficulty)
    return max(0.0, 1.0 - 0.45 * d), max(0.0, d)


CLEAN_CHANNEL = dict(hp=50.0, lp=7600.0, peq_g=0.0, level_db=0.0, noise_db=-72.0, wet=0.0)


def effective_channel(ch: dict, nuis: float) -> dict:
    """Interpolate between the clean channel (nuis 0) and the drawn one (nuis 1)."""
    out = dict(ch)
    for k, clean in CLEAN_CHANNEL.items():
        out[k] = clean + nuis * (ch[k] - clean)
    out["hp"] = max(20.0, out["hp"])
    out["lp"] = min(7900.0, max(1000.0, out["lp"]))
    out["wet"] = max(0.0, out["wet"])
    return out


# ---------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------

@dataclass
class Speaker:
    sid: str
    session: str
    gender: str
    synth: str          # "espeak" or "flite"
    voice: str
    base: dict          # baseline prosody offsets (same units as profiles)
    expressivity: float
    channel: dict       # filter / level / noise / reverb parameters
    f0_mean: float = 0.0  # flite only


@dataclass
class Utt:
    uid: str
    part: str
    index: int
    speaker: Speaker
    text: str
    sentence_id: str
    emotion: str        # label code written to the manifest ("" for source)
    render: str         # emotion used for rendering: neu/ang/hap/sad or "random"
    intensity: float = 1.0
    extra: dict = field(default_factory=dict)


def rng_for(seed: int, part: str, *idx: int) -> np.random.Generator:
    return np.random.default_rng([seed, PART_CODES[part], *idx])


def make_channel(rng: np.random.Generator, telephone: bool = False) -> dict:
    ch = dict(
        hp=float(rng.uniform(60.0, 320.0)),
        lp=float(rng.uniform(3400.0, 7600.0)) if not telephone else 3400.0,
        peq_f=float(np.exp(rng.uniform(np.log(400.0), np.log(3000.0)))),
        peq_g=float(rng.normal(0.0, 5.0)),
        peq_q=float(rng.uniform(0.7, 2.5)),
        level_db=float(rng.normal(0.0, 4.0)),
        noise_db=float(rng.uniform(-62.0, -36.0)),   # absolute noise floor, dBFS
        noise_tilt=float(rng.uniform(0.0, 1.0)),     # 0 white .. 1 brown-ish
        rt=float(rng.uniform(0.05, 0.35)),           # reverb decay (s)
        wet=float(rng.uniform(0.0, 0.35)),
        ir_seed=int(rng.integers(0, 2**31 - 1)),
    )
    return ch


def make_base(rng: np.random.Generator, spread: float = 1.0) -> dict:
    return dict(
        rate=float(rng.normal(0.0, 10.0 * spread)),
        pitch=float(rng.normal(0.0, 12.0 * spread)),
        range=float(rng.normal(0.0, 20.0 * spread)),
        gain=0.0,
        tilt=float(rng.normal(0.0, 2.0 * spread)),
        pause=float(rng.uniform(80.0, 260.0)),
    )


def allocate(total: int, n: int, rng: np.random.Generator) -> list[int]:
    """Split total into n near-equal integer shares, remainder to random members."""
    base = [total // n] * n
    for i in rng.permutation(n)[: total - sum(base)]:
        base[i] += 1
    return base


def plan_labelled(seed: int) -> list[Utt]:
    rng = rng_for(seed, "labelled", 0)
    # Four-class counts ~ IEMOCAP proportions (1103 ang / 1636 hap+exc / 1708 neu / 1084 sad)
    class_totals = {"ang": 150, "hap": 225, "neu": 235, "sad": 150}
    other_totals = {"fru": 20, "sur": 10}
    speakers = []
    for s in range(1, 6):
        for g, voice in zip("FM", LABELLED_VOICES[s]):
            srng = rng_for(seed, "labelled", 1000 + 10 * s + (g == "M"))
            speakers.append(Speaker(
                sid=f"Ses{s:02d}_{g}", session=f"Ses{s:02d}", gender=g, synth="espeak",
                voice=voice, base=make_base(srng),
                expressivity=float(np.exp(srng.normal(0.0, 0.35))),
                channel=make_channel(srng)))
    per_spk: dict[str, list[str]] = {sp.sid: [] for sp in speakers}
    for emo, tot in {**class_totals, **other_totals}.items():
        for sp, k in zip(speakers, allocate(tot, len(speakers), rng)):
            per_spk[sp.sid].extend([emo] * k)
    utts = []
    for sp in speakers:
        emos = per_spk[sp.sid]
        order = rng.permutation(len(emos))  # ids do not reveal the emotion
        # sentences: cycle through the carrier sentences per emotion, so every
        # emotion uses the same sentences
        sent_ptr = {e: int(rng.integers(0, len(LABELLED_SENTENCES))) for e in sorted(set(emos))}
        for k, j in enumerate(order, start=1):
            emo = emos[j]
            si = sent_ptr[emo] % len(LABELLED_SENTENCES)
            sent_ptr[emo] += 1
            label = emo
            render = emo if emo in EMOTION_PROFILES else "random"
            utts.append(Utt(uid=f"{sp.session}{sp.gender}_{k:04d}", part="labelled", index=0,
                            speaker=sp, text=LABELLED_SENTENCES[si],
                            sentence_id=f"L{si + 1:02d}", emotion=label, render=render))
    utts.sort(key=lambda u: u.uid)
    for i, u in enumerate(utts):
        u.index = i
        urng = rng_for(seed, "labelled", 10_000 + i)
        u.intensity = float(urng.uniform(0.35, 1.25))
        # about a third of the happy utterances are labelled "excited" (more intense)
        if u.emotion == "hap" and urng.uniform() < 1.0 / 3.0:
            u.emotion = "exc"
            u.intensity = float(min(1.4, u.intensity + 0.2))
    return utts


def plan_crosscorpus(seed: int) -> list[Utt]:
    rng = rng_for(seed, "crosscorpus", 0)
    # ~ MSP-IMPROV proportions (792 A / 2644 H / 3477 N / 885 S)
    class_totals = {"ang": 30, "hap": 102, "neu": 134, "sad": 34}
    codes = {"ang": "A", "hap": "H", "neu": "N", "sad": "S"}
    speakers = []
    for s in range(1, 7):
        for g, (voice, f0) in zip("FM", CROSS_SPEAKERS[s - 1]):
            srng = rng_for(seed, "crosscorpus", 1000 + 10 * s + (g == "M"))
            speakers.append(Speaker(
                sid=f"session{s}_{g}", session=f"session{s}", gender=g, synth="flite",
                voice=voice, base=make_base(srng), f0_mean=f0 * float(np.exp(srng.normal(0, 0.05))),
                expressivity=float(np.exp(srng.normal(0.0, 0.35))),
                channel=make_channel(srng, telephone=(voice == "kal"))))
    per_spk: dict[str, list[str]] = {sp.sid: [] for sp in speakers}
    for emo, tot in class_totals.items():
        for sp, k in zip(speakers, allocate(tot, len(speakers), rng)):
            per_spk[sp.sid].extend([emo] * k)
    utts = []
    for sp in speakers:
        emos = per_spk[sp.sid]
        order = rng.permutation(len(emos))
        snum = sp.session.replace("session", "")
        for k, j in enumerate(order, start=1):
            emo = emos[j]
            si = int(rng.integers(0, len(CROSS_SENTENCES)))
            utts.append(Utt(uid=f"MSP-S{snum}{sp.gender}-{k:04d}", part="crosscorpus", index=0,
                            speaker=sp, text=CROSS_SENTENCES[si], sentence_id=f"C{si + 1:02d}",
                            emotion=codes[emo], render=emo))
    utts.sort(key=lambda u: u.uid)
    for i, u in enumerate(utts):
        u.index = i
        u.intensity = float(rng_for(seed, "crosscorpus", 10_000 + i).uniform(0.35, 1.25))
    return utts


def plan_source(seed: int, n_talks: int = 60, segs: int = 20) -> list[Utt]:
    utts = []
    for t in range(1, n_talks + 1):
        trng = rng_for(seed, "source", 1000 + t)
        g = "F" if trng.uniform() < 0.4 else "M"
        variants = SOURCE_VARIANTS_F if g == "F" else SOURCE_VARIANTS_M
        voice = f"{SOURCE_ACCENTS[int(trng.integers(len(SOURCE_ACCENTS)))]}+" \
                f"{variants[int(trng.integers(len(variants)))]}"
        sp = Speaker(sid=f"talk{t:03d}", session=f"talk{t:03d}", gender=g, synth="espeak",
                     voice=voice, base=make_base(trng, spread=1.2),
                     expressivity=float(np.exp(trng.normal(0.0, 0.35))),
                     channel=make_channel(trng))
        for s in range(1, segs + 1):
            text = " ".join([
                _SRC_OPEN[int(trng.integers(len(_SRC_OPEN)))],
                _SRC_TOPIC[int(trng.integers(len(_SRC_TOPIC)))] + ",",
                _SRC_TAIL[int(trng.integers(len(_SRC_TAIL)))],
            ])
            utts.append(Utt(uid=f"talk{t:03d}_seg{s:04d}", part="source", index=0, speaker=sp,
                            text=text, sentence_id="", emotion="", render="random"))
    for i, u in enumerate(utts):
        u.index = i
    return utts


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

def utterance_prosody(u: Utt, seed: int, difficulty: float) -> dict:
    """Final prosody parameters of one utterance (offsets in profile units)."""
    rng = rng_for(seed, u.part, 20_000 + u.index)
    emo_scale, nuis = knob(difficulty)
    sp = u.speaker
    p = {k: nuis * v for k, v in sp.base.items()}
    p["pause"] = 150.0 + nuis * (sp.base["pause"] - 150.0)
    if u.render == "random":
        # random point in emotion space, mild (out-of-scope codes, source talks)
        w = rng.dirichlet(np.ones(4))
        amount = float(rng.uniform(0.0, 0.6 if u.part == "labelled" else 0.8))
        for key in p:
            p[key] += amount * sum(wi * EMOTION_PROFILES[e][key]
                                   for wi, e in zip(w, ("neu", "ang", "hap", "sad")))
    else:
        prof = EMOTION_PROFILES[u.render]
        expressivity = sp.expressivity ** nuis
        intensity = 1.0 + nuis * (u.intensity - 1.0)
        s = emo_scale * expressivity * intensity
        for key in p:
            p[key] += s * prof[key]
    for key, sd in JITTER_SD.items():
        p[key] += float(rng.normal(0.0, sd * nuis))
    p["lead"] = float(rng.uniform(0.15, 0.45))
    p["trail"] = float(rng.uniform(0.15, 0.45))
    p["noise_seed"] = int(rng.integers(0, 2**31 - 1))
    return p


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    import wave
    with wave.open(path, "rb") as w:
        sr = w.getframerate()
        n = w.getnframes()
        raw = w.readframes(n)
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0, sr


def synth_espeak(u: Utt, p: dict, tmp: str) -> str:
    rate = max(45.0, 100.0 + p["rate"])
    pitch = max(-70.0, p["pitch"])
    rng_ = max(5.0, 100.0 + p["range"])
    ssml = (f'<speak><prosody rate="{rate:.0f}%" pitch="{pitch:+.0f}%" '
            f'range="{rng_:.0f}%">{u.text}</prosody></speak>')
    path = os.path.join(tmp, "s.wav")
    subprocess.run(["espeak-ng", "-m", "-v", u.speaker.voice, "-w", path, ssml], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def synth_flite(u: Utt, p: dict, tmp: str) -> str:
    rate = max(45.0, 100.0 + p["rate"])
    # espeak's pitch percentage moves F0 by about half as much; keep the same scale
    f0 = u.speaker.f0_mean * (1.0 + 0.5 * p["pitch"] / 100.0)
    f0 = max(60.0, f0)
    sd = max(2.0, 0.16 * u.speaker.f0_mean * (100.0 + p["range"]) / 100.0)
    path = os.path.join(tmp, "s.wav")
    subprocess.run(["flite", "-voice", u.speaker.voice,
                    "--setf", f"duration_stretch={100.0 / rate:.4f}",
                    "--setf", f"int_f0_target_mean={f0:.2f}",
                    "--setf", f"int_f0_target_stddev={sd:.2f}",
                    "-t", u.text, "-o", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def load_16k(path: str, tmp: str) -> np.ndarray:
    """Read a synthesiser's wav at 16 kHz. Other rates go through sox's
    high-quality rate effect with dither off (-D): a fixed, non-random effect."""
    import wave
    with wave.open(path, "rb") as w:
        sr = w.getframerate()
    if sr != SR:
        dst = os.path.join(tmp, "r16k.wav")
        subprocess.run(["sox", "-D", path, "-b", "16", dst, "rate", "-v", str(SR)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = dst
    x, sr = _read_wav(path)
    assert sr == SR, sr
    return x


def insert_pause(x: np.ndarray, pause_s: float) -> np.ndarray:
    """Insert silence at the quietest word boundary in the middle of the utterance."""
    n = int(round(pause_s * SR))
    if n <= 0 or len(x) < SR // 4:
        return x
    hop = SR // 100
    frames = len(x) // hop
    e = np.array([np.sum(x[i * hop:(i + 1) * hop] ** 2) for i in range(frames)])
    lo, hi = int(frames * 0.3), int(frames * 0.7)
    if hi <= lo:
        return x
    k = lo + int(np.argmin(e[lo:hi]))
    cut = k * hop + hop // 2
    return np.concatenate([x[:cut], np.zeros(n), x[cut:]])


def high_shelf(gain_db: float, f0: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    a_ = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f0 / SR
    alpha = np.sin(w0) / 2 * np.sqrt(2.0)
    cw = np.cos(w0)
    sa = 2 * np.sqrt(a_) * alpha
    b = np.array([a_ * ((a_ + 1) + (a_ - 1) * cw + sa), -2 * a_ * ((a_ - 1) + (a_ + 1) * cw),
                  a_ * ((a_ + 1) + (a_ - 1) * cw - sa)])
    a = np.array([(a_ + 1) - (a_ - 1) * cw + sa, 2 * ((a_ - 1) - (a_ + 1) * cw),
                  (a_ + 1) - (a_ - 1) * cw - sa])
    return b / a[0], a / a[0]


def peaking(f0: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    a_ = 10 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f0 / SR
    alpha = np.sin(w0) / (2 * q)
    cw = np.cos(w0)
    b = np.array([1 + alpha * a_, -2 * cw, 1 - alpha * a_])
    a = np.array([1 + alpha / a_, -2 * cw, 1 - alpha / a_])
    return b / a[0], a / a[0]


_IR_CACHE: dict = {}


def room_ir(ch: dict) -> np.ndarray:
    key = (ch["ir_seed"], ch["rt"], ch["wet"])
    if key not in _IR_CACHE:
        r = np.random.default_rng(ch["ir_seed"])
        n = int(ch["rt"] * SR)
        t = np.arange(n) / SR
        tail = r.standard_normal(n) * np.exp(-6.9 * t / ch["rt"])
        tail /= np.sqrt(np.sum(tail ** 2)) + 1e-12
        ir = ch["wet"] * tail
        ir[0] += 1.0
        _IR_CACHE[key] = ir
    return _IR_CACHE[key]


def render(u: Utt, seed: int, difficulty: float, tmp: str) -> np.ndarray:
    p = utterance_prosody(u, seed, difficulty)
    if u.speaker.synth == "espeak":
        wav = synth_espeak(u, p, tmp)
    else:
        wav = synth_flite(u, p, tmp)
    x = load_16k(wav, tmp)
    x = insert_pause(x, max(0.0, p["pause"]) / 1000.0)
    # vocal effort / spectral tilt and loudness of the emotion
    b, a = high_shelf(p["tilt"])
    x = signal.lfilter(b, a, x)
    x = x * 10 ** (p["gain"] / 20.0)
    x = np.concatenate([np.zeros(int(p["lead"] * SR)), x, np.zeros(int(p["trail"] * SR))])
    # speaker channel: room, microphone colouring, band limits, level, noise floor
    ch = effective_channel(u.speaker.channel, knob(difficulty)[1])
    x = signal.fftconvolve(x, room_ir(ch))[: len(x)]
    b, a = peaking(ch["peq_f"], ch["peq_g"], ch["peq_q"])
    x = signal.lfilter(b, a, x)
    sos = signal.butter(2, ch["hp"], btype="highpass", fs=SR, output="sos")
    x = signal.sosfilt(sos, x)
    sos = signal.butter(4, ch["lp"], btype="lowpass", fs=SR, output="sos")
    x = signal.sosfilt(sos, x)
    x = x * 10 ** (ch["level_db"] / 20.0)
    nr = np.random.default_rng(p["noise_seed"])
    white = nr.standard_normal(len(x))
    brown = signal.lfilter([1.0], [1.0, -0.98], white)
    brown /= np.std(brown) + 1e-12
    noise = (1 - ch["noise_tilt"]) * white + ch["noise_tilt"] * brown
    noise /= np.std(noise) + 1e-12
    x = x + noise * 10 ** (ch["noise_db"] / 20.0)
    # 16-bit quantisation without dither, as a recorder would store it
    q = np.clip(np.round(x * 32768.0), -32768, 32767)
    return (q / 32768.0).astype(np.float32)


# ---------------------------------------------------------------------------
# Feature extraction and worker pool
# ---------------------------------------------------------------------------

_SMILE = None


def _smile():
    global _SMILE
    if _SMILE is None:
        import opensmile
        _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.IS10,
                                 feature_level=opensmile.FeatureLevel.Functionals)
    return _SMILE


def feature_names() -> list[str]:
    return list(_smile().feature_names)


def _work(args):
    u, seed, difficulty = args
    with tempfile.TemporaryDirectory(prefix="emocycle-corpus-") as tmp:
        x = render(u, seed, difficulty, tmp)
    v = _smile().process_signal(x, SR).values[0].astype(np.float32)
    return u.uid, fmt_row(u.uid, v), len(x) / SR


def fmt_value(v: float) -> str:
    """A value as SMILExtract's CSV sink prints it: integers as %d, others as %e."""
    if not math.isfinite(v):
        raise ValueError(f"non-finite feature value {v}")
    if v == int(v) and abs(v) < 2**31:
        return "%d" % int(v)
    return "%e" % v


def fmt_row(uid: str, v: np.ndarray) -> str:
    return ";".join([f"'{uid}'", "0.000000"] + [fmt_value(float(a)) for a in v]) + "\n"


def run_part(utts: list[Utt], seed: int, difficulty: float, jobs: int, label: str) -> tuple[list[str], float]:
    tasks = [(u, seed, difficulty) for u in utts]
    rows: list[str] = []
    total_s = 0.0
    t0 = time.time()
    if jobs > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(jobs) as pool:
            it = pool.imap(_work, tasks, chunksize=8)
            for i, (uid, row, dur) in enumerate(it, 1):
                rows.append(row)
                total_s += dur
                _progress(label, i, len(tasks), t0)
    else:
        for i, t in enumerate(tasks, 1):
            uid, row, dur = _work(t)
            rows.append(row)
            total_s += dur
            _progress(label, i, len(tasks), t0)
    return rows, total_s


def _progress(label: str, i: int, n: int, t0: float) -> None:
    if i == n or i % 100 == 0:
        print(f"  {label}: {i}/{n} utterances ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def atomic_write(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def gzip_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(text.encode("utf-8"))
    return buf.getvalue()


def manifest(utts: list[Utt]) -> str:
    lines = ["utterance_id,emotion,session,speaker,gender,sentence_id,synthesiser,voice"]
    for u in utts:
        lines.append(",".join([u.uid, u.emotion, u.speaker.session, u.speaker.sid,
                               u.speaker.gender, u.sentence_id, u.speaker.synth, u.speaker.voice]))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (fixtures/corpus)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (output does not depend on it)")
    ap.add_argument("--parts", default="labelled,source,crosscorpus")
    ap.add_argument("--limit", type=int, default=0, help="debug: render only the first N per part")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    parts = [p for p in args.parts.split(",") if p]
    planners = {"labelled": plan_labelled, "source": plan_source, "crosscorpus": plan_crosscorpus}
    header = ";".join(["name", "frameTime"] + feature_names()) + "\n"
    t_all = time.time()
    for part in parts:
        utts = planners[part](args.seed)
        if args.limit:
            utts = utts[: args.limit]
        print(f"{part}: rendering {len(utts)} utterances (seed {args.seed}, "
              f"difficulty {args.difficulty})", file=sys.stderr, flush=True)
        rows, audio_s = run_part(utts, args.seed, args.difficulty, args.jobs, part)
        data = gzip_bytes(header + "".join(rows))
        atomic_write(os.path.join(args.out, f"{part}.csv.gz"), data)
        if part != "source":
            atomic_write(os.path.join(args.out, f"{part}_labels.csv"), manifest(utts).encode())
        print(f"{part}: {len(rows)} rows, {audio_s / 60:.1f} min of audio, "
              f"{len(data) / 1e6:.2f} MB gzip", file=sys.stderr, flush=True)
    write_sums(args.out)
    print(f"done in {time.time() - t_all:.0f} s", file=sys.stderr)
    return 0


SHIPPED = ["labelled.csv.gz", "labelled_labels.csv", "source.csv.gz",
           "crosscorpus.csv.gz", "crosscorpus_labels.csv"]


def write_sums(out: str) -> None:
    lines = []
    for name in SHIPPED:
        path = os.path.join(out, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                lines.append(f"{hashlib.sha256(f.read()).hexdigest()}  {name}\n")
    atomic_write(os.path.join(out, "SHA256SUMS"), "".join(lines).encode())


if __name__ == "__main__":
    sys.exit(main())
