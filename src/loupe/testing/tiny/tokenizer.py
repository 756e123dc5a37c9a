"""A small byte-level BPE tokenizer trained offline, so tiny checkpoints need no download."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from num2words import num2words
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# Plain English about pictures and everyday scenes: the words a vision-language prompt and its
# answer use most, so that test prompts tokenize into a handful of ids rather than raw bytes.
_CORPUS = """\
Describe this image in detail. What do you see in the picture? Answer in one short sentence.
The photo shows a man ironing clothes on a board that is fixed to the back of a yellow taxi.
A red bus waits at the corner of a busy street while people cross in front of it.
Two small boats rest on calm water near a wooden pier, and the sky above is pale blue.
A football player in a white shirt looks to his left; the crowd behind him is blurred.
There is a chart with several coloured lines, a title at the top, and labels on each axis.
The cat sleeps on a soft chair by the window. A dog runs across the green grass in the park.
How many people are in the image? There are three people: a woman, a man and a child.
What colour is the car? The car is dark grey, and its lights are on because it is raining.
Read the text on the sign. The sign says that the road is closed for repairs until Monday.
Is the picture taken indoors or outdoors? It was taken outdoors, late in the afternoon.
You are a helpful assistant. The user asks a question and the assistant gives a clear answer.
Please list the objects on the table: a cup of coffee, a plate, two spoons and a newspaper.
The building on the right is tall and made of glass; the one on the left is old red brick.
A bright kitchen with white cabinets, a steel sink, a bowl of apples and a vase of flowers.
The mountains in the distance are covered with snow, and a river winds through the valley.
Compare the two pictures and explain the difference between them in a few simple words.
The graph shows that sales grew every month from January to June and then fell in July.
Children play football on a dusty field at sunset while their parents watch from a bench.
Where was this photo taken? It looks like a harbour in a small town by the sea in summer.
What is the person holding? She holds an umbrella in one hand and a phone in the other.
The screen displays a table of numbers with headings for the name, the date and the price.
Count the birds on the wire. I can count seven birds, all facing towards the same side.
An old bicycle leans against a stone wall covered with ivy beside a narrow village lane.
The plate holds rice, grilled fish, a slice of lemon and some fresh green vegetables.
Thank you. You are welcome. Yes, no, maybe, it depends, I am not sure, I think so.
Is there anything unusual about this image? Yes: nobody usually irons on top of a moving car.
Summarise the document: it is a letter asking the reader to send the form back by Friday.
The train leaves the station at nine in the morning and arrives in the city before noon.
Morning, evening, night, today, tomorrow, yesterday, spring, summer, autumn and winter.
Black, white, red, orange, yellow, green, blue, purple, pink, brown and grey are colours.
Up, down, left, right, above, below, behind, in front of, next to, between and inside.
"""


# How Qwen2's published tokenizer (and those of the Qwen-based families) cuts text before BPE:
# contractions, words with one leading non-letter, each digit on its own, punctuation runs, and
# whitespace. Digits alone make a number's tokens the same whichever way the text was produced,
# so an answer sent back in the next turn tokenizes into the ids the model generated.
_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True, slots=True)
class SpecialTokens:
    """A family's special tokens in their published id order, and which of them play which role."""

    tokens: tuple[str, ...]
    eos: str
    pad: str
    bos: str | None = None
    unk: str | None = None

    def __post_init__(self) -> None:
        roles = {self.eos, self.pad, self.bos, self.unk} - {None}
        assert roles <= set(self.tokens), f"role tokens missing from the list: {roles}"


def _corpus_lines() -> Iterator[str]:
    yield from _CORPUS.splitlines()
    # Counts, ordinals and years in digits and in words: the words fill the vocabulary to a few
    # thousand entries, without a large text corpus in the source.
    for n in range(3000):
        ordinal, year = num2words(n, to="ordinal"), num2words(n, to="year")
        yield f"{n}: {num2words(n)}, the {ordinal}, in {year}."


def train_tokenizer(special: SpecialTokens, *, vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the built-in corpus; deterministic for equal arguments.

    Special tokens take the first ids, each a single special id. Training stops early when the
    corpus has no pair left to merge, so the vocabulary may be smaller than `vocab_size`;
    `len(tokenizer)` is the size to give a model config.
    """
    roles = {special.bos, special.eos, special.pad, special.unk}
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special.tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    core.train_from_iterator(_corpus_lines(), trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token=special.bos,
        eos_token=special.eos,
        pad_token=special.pad,
        unk_token=special.unk,
        extra_special_tokens=[t for t in special.tokens if t not in roles],
        clean_up_tokenization_spaces=False,
    )


def with_named_tokens(
    tokenizer: PreTrainedTokenizerFast, named: dict[str, str]
) -> PreTrainedTokenizerFast:
    """The same tokenizer, with special tokens reachable by name (`tokenizer.boi_token`)."""
    kwargs = {k: v for k, v in tokenizer.init_kwargs.items() if k != "backend"}
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer.backend_tokenizer, **kwargs, model_specific_special_tokens=named
    )
