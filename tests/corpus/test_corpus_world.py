"""The closed world: well-formed, correct answers, unique keys."""
from ttt.corpus.world import (ARITHMETIC_TOPICS, MAX_NUMBER, NUMBER_WORDS, TOPICS, build_world, chat_lines,
                              counting_runs)

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


def test_counting_runs_count_every_stretch_of_three_to_nine_numbers_both_ways():
    runs = counting_runs()
    assert len(runs) == len(set(runs)) == 2 * sum(MAX_NUMBER + 2 - n for n in range(3, 10))  # 224
    assert ("count from seven to eleven", "seven eight nine ten eleven") in runs
    assert ("count down from two to zero", "two one zero") in runs
    for request, answer in runs:
        values = [NUMBER_WORDS.index(w) for w in answer.split()]
        step = -1 if request.startswith("count down") else 1
        assert 3 <= len(values) <= 9 and values == list(range(values[0], values[-1] + step, step))
        assert request.endswith(f"from {answer.split()[0]} to {answer.split()[-1]}")
