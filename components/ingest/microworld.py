"""Seeded micro-world generators: facts with known answers, in English and Chinese.

Each generator draws facts with `rng` and returns TextRecords whose split is decided by a hash of the
underlying fact (`key`), never of the rendered text, so the same fact (e.g. 3 + 4) lands in one split
whatever language or task renders it.

    digit strings        asr   en "three seven one nine" / zh "三七一九"
    arithmetic           chat  "what is three plus four" -> "seven" (zh: "三加四等于几" -> "七"); a share also s2s
    number translation   s2tt  "forty two" <-> "四十二"
    phrase translation   s2tt  "good morning" <-> "早上好"
    emotion              emotion  a neutral-content sentence spoken with the label's prosody -> label
    instructions         chat  "say the word apple" -> "apple", "what comes after five" -> "six", ...; a share s2s
    tts                  tts   short digit strings / phrases to be spoken (text in, speech out)
    digit images         vqa   load_digits image + "what digit is in the image" -> "seven" (en/zh)
    text images          vqa   rendered word/phrase + "what word is written in the image" -> the word (en/zh)
The vqa question is spoken too, so each vqa row serves image+text and image+speech (tri-modal) samples.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from components.common.config import MicroWorldConfig
from components.common.manifest import TextRecord

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ZH_DIGITS = "零一二三四五六七八九"

PHRASES: tuple[tuple[str, str], ...] = (
    ("good morning", "早上好"),
    ("good night", "晚安"),
    ("thank you", "谢谢"),
    ("you are welcome", "不客气"),
    ("how are you", "你好吗"),
    ("i am fine", "我很好"),
    ("see you tomorrow", "明天见"),
    ("excuse me", "打扰一下"),
    ("i am sorry", "对不起"),
    ("happy birthday", "生日快乐"),
    ("what time is it", "现在几点"),
    ("where is the station", "车站在哪里"),
    ("i like tea", "我喜欢茶"),
    ("the weather is nice", "天气很好"),
    ("it is raining", "下雨了"),
    ("please sit down", "请坐"),
    ("i do not understand", "我不明白"),
    ("how much is this", "这个多少钱"),
    ("my name is li", "我叫李"),
    ("nice to meet you", "很高兴认识你"),
    ("the door is open", "门开着"),
    ("close the window", "关上窗户"),
    ("i am hungry", "我饿了"),
    ("let us go home", "我们回家吧"),
    ("the cat is sleeping", "猫在睡觉"),
    ("drink some water", "喝点水"),
    ("turn on the light", "开灯"),
    ("i have two brothers", "我有两个兄弟"),
    ("the book is red", "这本书是红色的"),
    ("we are friends", "我们是朋友"),
)
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")
EMOTION_SUBJECTS = (
    "my sister",
    "the teacher",
    "our neighbour",
    "my father",
    "the new boss",
    "my best friend",
    "the old man",
    "our team",
    "the doctor",
    "my brother",
    "the children",
    "the driver",
)
EMOTION_EVENTS = (
    "called me today",
    "sold the old car",
    "moved to a new house",
    "left without us",
    "won the game",
    "lost the match",
    "found the keys",
    "painted the kitchen blue",
    "cancelled the trip",
    "arrived this morning",
    "opened the letter",
    "missed the train",
    "bought a puppy",
    "closed the shop",
    "changed the plan",
    "broke the window",
    "came home early",
    "forgot my birthday",
    "baked a cake",
    "read the results",
)
# neutral-content sentences: the emotion is carried by prosody only (12 x 20 = 240 sentences)
EMOTION_SENTENCES = tuple(f"{s} {e}" for s in EMOTION_SUBJECTS for e in EMOTION_EVENTS)
WORDS = (
    "apple",
    "river",
    "window",
    "garden",
    "yellow",
    "music",
    "pencil",
    "orange",
    "planet",
    "rabbit",
    "doctor",
    "summer",
    "winter",
    "bread",
    "cloud",
    "horse",
    "table",
    "train",
    "water",
    "stone",
)


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1000 ("forty two", "three hundred and five")."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_to_words supports 0..999, got {n}")
    if n < 10:
        return ONES[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))


def number_to_zh(n: int) -> str:
    """Chinese numerals for 0 <= n < 1000 (四十二, 三百零五)."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_to_zh supports 0..999, got {n}")
    if n < 10:
        return ZH_DIGITS[n]
    if n < 20:
        return "十" + ("" if n == 10 else ZH_DIGITS[n % 10])
    if n < 100:
        return ZH_DIGITS[n // 10] + "十" + ("" if n % 10 == 0 else ZH_DIGITS[n % 10])
    rest = n % 100
    if rest == 0:
        return ZH_DIGITS[n // 100] + "百"
    if rest < 10:
        return ZH_DIGITS[n // 100] + "百零" + ZH_DIGITS[rest]
    tail = number_to_zh(rest)
    return ZH_DIGITS[n // 100] + "百" + ("一" + tail if rest < 20 else tail)


Split = Callable[[str], str]


def _rec(
    rid: str, text: str, lang: str, gen: str, key: str, split: Split, task: str, target: str, **extra: str
) -> TextRecord:
    return TextRecord(rid, text, lang, f"micro/{gen}", split(key), task, target, {"fact": key, **extra})


def digit_strings(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(3, 6))]
        key = "digits:" + "".join(map(str, digits))
        if rng.random() < 0.7:
            text = " ".join(ONES[d] for d in digits)
            out.append(_rec(f"en-digits-{key[7:]}", text, "en", "digits", key, split, "asr", text))
        else:
            text = "".join(ZH_DIGITS[d] for d in digits)
            out.append(_rec(f"zh-digits-{key[7:]}", text, "zh", "digits", key, split, "asr", text))
    return out


def arithmetic(n: int, s2s_fraction: float, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        op = rng.choice(["plus", "times"])
        ans = a + b if op == "plus" else a * b
        key = f"arith:{a}{op}{b}"
        task = "s2s" if rng.random() < s2s_fraction else "chat"
        if rng.random() < 0.7:
            q = f"what is {ONES[a]} {op} {ONES[b]}"
            out.append(
                _rec(f"en-arith-{a}{op}{b}-{task}", q, "en", "arithmetic", key, split, task, number_to_words(ans))
            )
        else:
            q = f"{ZH_DIGITS[a]}{'加' if op == 'plus' else '乘'}{ZH_DIGITS[b]}等于几"
            out.append(_rec(f"zh-arith-{a}{op}{b}-{task}", q, "zh", "arithmetic", key, split, task, number_to_zh(ans)))
    return out


def number_translation(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        k = rng.randrange(1, 1000)
        key = f"numtr:{k}"
        if rng.random() < 0.5:
            out.append(
                _rec(
                    f"en-numtr-{k}",
                    number_to_words(k),
                    "en",
                    "number_translation",
                    key,
                    split,
                    "s2tt",
                    number_to_zh(k),
                    target_lang="zh",
                )
            )
        else:
            out.append(
                _rec(
                    f"zh-numtr-{k}",
                    number_to_zh(k),
                    "zh",
                    "number_translation",
                    key,
                    split,
                    "s2tt",
                    number_to_words(k),
                    target_lang="en",
                )
            )
    return out


def phrase_translation(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        i = rng.randrange(len(PHRASES))
        en, zh = PHRASES[i]
        key = f"phrase:{en}"
        if rng.random() < 0.5:
            out.append(_rec(f"en-phrase-{i}", en, "en", "phrase_translation", key, split, "s2tt", zh, target_lang="zh"))
        else:
            out.append(_rec(f"zh-phrase-{i}", zh, "zh", "phrase_translation", key, split, "s2tt", en, target_lang="en"))
    return out


def emotion(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        i, label = rng.randrange(len(EMOTION_SENTENCES)), rng.choice(EMOTIONS)
        sentence = EMOTION_SENTENCES[i]
        # split by the sentence, so one sentence never appears in two splits whatever its label
        out.append(
            _rec(
                f"en-emotion-{i}-{label}",
                sentence,
                "en",
                "emotion",
                f"emotion:{sentence}",
                split,
                "emotion",
                label,
                emotion=label,
            )
        )
    return out


def instructions(n: int, s2s_fraction: float, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        kind = rng.randrange(4)
        task = "s2s" if rng.random() < s2s_fraction else "chat"
        if kind == 0:
            w = rng.choice(WORDS)
            q, a, key = f"say the word {w}", w, f"say:{w}"
        elif kind == 1:
            k = rng.randint(2, 6)
            q, a, key = f"count from one to {ONES[k]}", " ".join(ONES[1 : k + 1]), f"count:{k}"
        elif kind == 2:
            k = rng.randrange(0, 19)
            q, a, key = f"what number comes after {number_to_words(k)}", number_to_words(k + 1), f"after:{k}"
        else:
            w = rng.choice(WORDS)
            q, a, key = f"spell the word {w}", " ".join(w), f"spell:{w}"
        out.append(_rec(f"en-instr-{key.replace(':', '-')}-{task}", q, "en", "instructions", key, split, task, a))
    return out


def tts_items(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    """Texts to be spoken (stage 3, TTS): digit strings and phrases in both languages."""
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            digits = [rng.randrange(10) for _ in range(rng.randint(2, 5))]
            key = "digits:" + "".join(map(str, digits))
            text = " ".join(ONES[d] for d in digits)
            out.append(_rec(f"en-tts-digits-{key[7:]}", text, "en", "tts", key, split, "tts", text))
        else:
            i = rng.randrange(len(PHRASES))
            lang = rng.choice(["en", "zh"])
            text = PHRASES[i][0 if lang == "en" else 1]
            out.append(_rec(f"{lang}-tts-phrase-{i}", text, lang, "tts", f"phrase:{PHRASES[i][0]}", split, "tts", text))
    return out


def digit_images(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    from components.synthesize.images import digits

    _, labels = digits()
    out = []
    for _ in range(n):
        i = rng.randrange(len(labels))
        label = int(labels[i])
        key = f"digitimg:{i}"
        if rng.random() < 0.7:
            out.append(
                _rec(
                    f"en-digitimg-{i}",
                    "what digit is in the image",
                    "en",
                    "digit_images",
                    key,
                    split,
                    "vqa",
                    ONES[label],
                    image=f"digits:{i}",
                )
            )
        else:
            out.append(
                _rec(
                    f"zh-digitimg-{i}",
                    "图片里是什么数字",
                    "zh",
                    "digit_images",
                    key,
                    split,
                    "vqa",
                    ZH_DIGITS[label],
                    image=f"digits:{i}",
                )
            )
    return out


def text_images(n: int, rng: random.Random, split: Split) -> list[TextRecord]:
    out = []
    for _ in range(n):
        if rng.random() < 0.6:
            w = rng.choice(WORDS)
            out.append(
                _rec(
                    f"en-textimg-{w}",
                    "what word is written in the image",
                    "en",
                    "text_images",
                    f"textimg:{w}",
                    split,
                    "vqa",
                    w,
                    image=f"text:en:{w}",
                )
            )
        else:
            i = rng.randrange(len(PHRASES))
            zh = PHRASES[i][1]
            out.append(
                _rec(
                    f"zh-textimg-{i}",
                    "图片上写的是什么",
                    "zh",
                    "text_images",
                    f"textimg:{PHRASES[i][0]}",
                    split,
                    "vqa",
                    zh,
                    image=f"text:zh:{zh}",
                )
            )
    return out


def generate(cfg: MicroWorldConfig, rng: random.Random, split: Split) -> list[TextRecord]:
    return (
        digit_strings(cfg.digit_strings, rng, split)
        + arithmetic(cfg.arithmetic, cfg.s2s_fraction, rng, split)
        + number_translation(cfg.number_translation, rng, split)
        + phrase_translation(cfg.phrase_translation, rng, split)
        + emotion(cfg.emotion, rng, split)
        + instructions(cfg.instructions, cfg.s2s_fraction, rng, split)
        + tts_items(cfg.tts, rng, split)
        + digit_images(cfg.digit_images, rng, split)
        + text_images(cfg.text_images, rng, split)
    )
