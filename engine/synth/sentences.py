"""Sentences for synthetic speech: a TRAINING list and a generator, never the benchmark's.

The benchmark's lines live in `bench/synth-v1/manifest.json` and must never be trained on;
`training_sentences()` excludes them (compared after normalising case, punctuation and
spacing) and a test checks that the two sets are disjoint. The fixed list covers the viseme
classes (bilabial closures, labiodentals, rounded and open vowels, pauses at commas); the
generator composes many more from word lists for long training runs.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import numpy as np

TRAINING: tuple[str, ...] = (
    "Bring the map back before the boat leaves the bay.",
    "My mother made marmalade from bitter oranges.",
    "Five fine violins were found in the van.",
    "We will wait for the wind to wane at twilight.",
    "Open the old wooden door slowly, please.",
    "A big brown bear ambled past the pine trees.",
    "Who knew the blue moon would loom so soon?",
    "She sells seashells by the shimmering shore.",
    "The cat sat on the mat, and then it napped.",
    "Father fixed the fence after the first frost.",
    "Put the pepper and the parsley in the pot.",
    "I thought the thunder would never stop.",
    "Please pass me the paper plates, Paul.",
    "Each evening we eat beans and cheese.",
    "The choir chose a cheerful song for June.",
    "Ruby wore a rosy robe to the opera.",
    "Wash the windows while the weather is warm.",
    "How about a walk around the harbour?",
    "The judge urged the jury to be fair.",
    "Maybe Bob will bake a blueberry pie.",
    "Large logs lay along the lonely lane.",
    "Hot coffee helps on a cold morning.",
    "The vote was very close in the village.",
    "Move the movie night to Monday, maybe.",
    "Good books make good friends, they say.",
    "Oh no, the oven is still on!",
    "Yes, you may use my umbrella.",
    "The pupils sat quietly, waiting for the bell.",
    "Ten tired tigers took a train to town.",
    "Apples, pears and plums filled the basket.",
    "Keep calm and carry the crate to the car.",
    "Our aunt owns an orchard in August.",
    "Every morning, Emma plays the piano.",
    "The baby babbled happily in the buggy.",
    "Why would anyone wear wool in summer?",
    "Quick, follow me through the foggy field.",
    "The museum opens at nine on Tuesdays.",
    "Bright beams of light bounced off the lake.",
    "Please remember to lock the back door.",
    "Many people moved here for the mild climate.",
    "A warm bowl of soup would be wonderful.",
    "He whispered, but everyone heard him.",
    "Bubbles floated above the bathtub.",
    "Under the bridge, the river ran fast.",
    "Vivid purple flowers bloomed in May.",
    "Our boat bobbed up and down all afternoon.",
    "Who wants more mashed potatoes?",
    "The puppy pulled on the rope, then paused.",
    "If it rains, we will meet at the market.",
    "Mum made muffins for the school fair.",
    "Water the plants before you leave.",
    "The pilot announced a smooth arrival.",
    "I owe you an apology, honestly.",
    "Frozen fish fingers fill the freezer.",
    "Bring both boxes up to the top floor.",
    "Wow, what a wonderful view of the valley!",
    "The farmer fed the lambs at dawn.",
    "Could you open a window, please?",
    "Smoke rose above the mountain cabin.",
    "Paula painted a map of the moon.",
    "We watched the waves until midnight.",
    "A mouse moved beneath the floorboards.",
    "Blue paint dripped onto the white floor.",
    "Let me know when the bus arrives.",
    "Autumn leaves fell on the empty path.",
    "Mike bought a bike with his birthday money.",
    "Fresh bread smells better than anything.",
    "The engine whirred, then fell silent.",
    "Pack a pair of boots for the mud.",
    "Please be patient, the meeting will begin soon.",
    "Oliver often forgot his own phone number.",
    "Maybe we should move the table by the window.",
    "The mayor promised a brand new bridge.",
    "Bees buzzed busily in the blossom.",
    "Who put the umbrella in the oven?",
    "My brother plays the bass in a band.",
    "Amber was amazed by the ocean view.",
    "Vera values honesty above all else.",
    "Moments later, the lights went out.",
    "Bobby opened the parcel with a smile.",
    "We ordered pizza, pasta and a salad.",
    "The wolf howled at the full moon.",
    "Olive oil is good for cooking.",
    "Meet me by the fountain at five.",
    "The movie was boring, but the popcorn was fine.",
    "Please keep the music down after ten.",
    "Maple syrup tastes best on warm pancakes.",
    "Wear a warm coat, the wind is bitter.",
    "Robert rowed the boat across the pond.",
    "Have you ever seen a purple cow?",
    "Papers piled up on the professor's desk.",
    "Whoever wins will buy the whole team lunch.",
    "The bubble burst before it reached the roof.",
    "Mop the floor, then open the blinds.",
    "Five people found the path very steep.",
    "Umbrellas bloomed as the rain began.",
    "Uncle Bill built a boat in his barn.",
    "Hope you have a lovely evening.",
    "Bake the pie for forty minutes.",
    "A mob of monkeys mimicked the man.",
)

# word lists for generated lines: chosen to cover every viseme class
_SUBJECTS = ("the pilot", "my neighbour", "a baker", "the old farmer", "our mayor", "Mabel",
             "Vincent", "a puppy", "the whole family", "Bob and Molly", "a wise owl", "Paula")
_VERBS = ("moved", "found", "painted", "bought", "wrapped", "polished", "opened", "mended",
          "borrowed", "pushed", "washed", "folded", "weighed", "lifted", "chose")
_OBJECTS = ("a purple box", "the map", "five maple leaves", "two warm loaves", "the blue boat",
            "a heavy bowl", "the broken fan", "an old violin", "the morning paper",
            "a woolly mitten", "the velvet bag", "some pumpkins")
_TAILS = ("before noon", "by the harbour", "in the pouring rain", "after the movie",
          "with a big smile", "behind the barn", "on Wednesday", "near the bridge",
          "for his mother", "at the market", "without a word", "under the moon")


def normalise(text: str) -> str:
    """Lower case, letters, digits and single spaces: how sentences are compared."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def benchmark_manifest_path() -> Path:
    return Path(__file__).resolve().parents[2] / "bench" / "synth-v1" / "manifest.json"


@cache
def benchmark_sentences(manifest: Path | None = None) -> frozenset[str]:
    """Normalised sentences of the benchmark manifest (empty if it is not present)."""
    path = manifest or benchmark_manifest_path()
    if not path.is_file():
        return frozenset()
    data = json.loads(path.read_text())
    lines: set[str] = set()
    for clip in data.get("clips", []):
        for key in ("text", "pair_text"):
            if clip.get(key):
                lines.add(normalise(clip[key]))
    for text in data.get("sentences", []):
        lines.add(normalise(text))
    return frozenset(lines)


def generated_sentence(index: int) -> str:
    """The index-th composed training line (deterministic)."""
    rng = np.random.default_rng([7177, int(index)])
    s, v, o, t = (lst[int(rng.integers(len(lst)))] for lst in (_SUBJECTS, _VERBS, _OBJECTS,
                                                                 _TAILS))
    if rng.random() < 0.4:
        return f"{s[0].upper()}{s[1:]} {v} {o}, {t}."
    return f"{s[0].upper()}{s[1:]} {v} {o} {t}."


def training_sentences(count: int | None = None) -> list[str]:
    """Training lines: the fixed list, then generated ones; never a benchmark line."""
    banned = benchmark_sentences()
    out = [s for s in TRAINING if normalise(s) not in banned]
    if count is None:
        return out
    i = 0
    seen = {normalise(s) for s in out}
    while len(out) < count:
        line = generated_sentence(i)
        i += 1
        key = normalise(line)
        if key in banned or key in seen:
            continue
        seen.add(key)
        out.append(line)
    return out[:count]
