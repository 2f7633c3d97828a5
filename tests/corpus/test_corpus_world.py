"""The closed world: well-formed, correct answers, unique keys."""
from ttt.corpus.world import ARITHMETIC_TOPICS, MAX_NUMBER, NUMBER_WORDS, TOPICS, build_world, chat_lines

WORD_VALUE = {w: i for i, w in enumerate(NUMBER_WORDS)}


def test_keys_unique_and_topics_covered():
    items = build_world()
    keys = [it.key for it in items]
    assert len(keys) == len(set(keys))
    assert {it.topic for it in items} == set(TOPICS)
    assert build_world() == items  # no hidden randomness


def test_arithmetic_answers_are_correct_and_in_range():
    ops = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
    arithmetic = [it for it in build_world() if it.topic in ARITHMETIC_TOPICS]
    assert len(arithmetic) > 400
    for it in arithmetic:
        a, op, b, is_, result = it.answer.split()
        assert (op, is_) == (it.topic, "is")
        assert ops[op](WORD_VALUE[a], WORD_VALUE[b]) == WORD_VALUE[result]
        assert 0 <= WORD_VALUE[result] <= MAX_NUMBER
        assert it.key == f"{op}:{WORD_VALUE[a]}:{WORD_VALUE[b]}"
        assert all(f"{a} {op} {b}" in q for q in it.questions)


def test_texts_are_plain_lowercase_words():
    for it in build_world():
        for text in (*it.questions, it.answer):
            assert text == text.lower().strip() and all(w.isalpha() for w in text.split()), text
    assert "the capital of france is paris" in chat_lines(build_world())
    assert "the day after sunday is monday" in chat_lines(build_world())
