"""BLEU and chrF against independent implementations: NLTK's corpus_bleu (Debian's python3-nltk)
on the same 13a tokens, and the 13a tokenizer against sacrebleu's regular expressions run by
Python's re on the same strings."""
import random
import re

import pytest

import attend

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")

# sacrebleu's Tokenizer13a: the language-independent replacements, then TokenizerRegexp.
_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a_reference(line):
    for a, b in [("<skipped>", ""), ("-\n", ""), ("\n", " "), ("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")]:
        line = line.replace(a, b)
    line = " {} ".format(line)
    for pattern, repl in _RULES:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


ALPHABET = list("abcXYZ019 .,-'\"!?;:()[]{}<>/\\@#$%&*+=_`~|^") + ["é", "ñ", "¿", "“", "”", "\u00a0", "\u3000", "&amp;", "&lt;"]


def random_sentence(rng, n):
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def test_13a_matches_sacrebleus_regular_expressions():
    rng = random.Random(1)
    cases = [random_sentence(rng, rng.randint(0, 40)) for _ in range(3000)]
    cases += ["Hello, world! It's 3.14 and 1,000 - 2-3.", "a..b,,c 5.,6", "e.g. U.S.A. 10-20%", "x-\ny", "<skipped> z"]
    for s in cases:
        assert attend.tokenize_13a(s) == tokenize_13a_reference(s), repr(s)


def corpus(rng, n):
    words = "the a cat dog sat on mat and , . ran fast slowly big small 12 3.5 red blue".split()
    refs, hyps = [], []
    for _ in range(n):
        ref = [rng.choice(words) for _ in range(rng.randint(4, 25))]
        hyp = [w if rng.random() < 0.7 else rng.choice(words) for w in ref]
        hyp = hyp[: max(4, len(hyp) - rng.randint(0, 3))]
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    return hyps, refs


@pytest.mark.parametrize("seed", range(5))
def test_corpus_bleu_agrees_with_nltk_to_0_01(seed):
    hyps, refs = corpus(random.Random(seed), 200)
    ours = attend.corpus_bleu(hyps, refs)
    # NLTK's method3 is mteval's 'exp' smoothing (NIST geometric sequence), sacrebleu's default.
    theirs = 100 * nltk_bleu.corpus_bleu(
        [[attend.tokenize_13a(r).split()] for r in refs],
        [attend.tokenize_13a(h).split() for h in hyps],
        smoothing_function=nltk_bleu.SmoothingFunction().method3,
    )
    assert abs(ours["score"] - theirs) < 0.01, (ours, theirs)
    assert ours["signature"] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp"


def test_smoothing_agrees_with_nltk_when_an_order_has_no_match():
    hyps, refs = ["a b c d e", "f g h i"], ["a b x d e", "f g y i"]
    ours = attend.corpus_bleu(hyps, refs)["score"]
    theirs = 100 * nltk_bleu.corpus_bleu(
        [[r.split()] for r in refs], [h.split() for h in hyps], smoothing_function=nltk_bleu.SmoothingFunction().method3
    )
    assert abs(ours - theirs) < 0.01, (ours, theirs)


def test_chrf_on_sacrebleus_published_example():
    s = attend.corpus_chrf(
        ["The relationship between Obama and Netanyahu is not exactly friendly."],
        ["The ties between Obama and Netanyahu are not particularly friendly."],
    )
    assert abs(s["score"] - 61.576379378113785) < 1e-9
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        attend.corpus_chrf(["a", "b"], ["a"])
