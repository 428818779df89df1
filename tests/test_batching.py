from domainft.batching import length_batches, predict_sorted


def test_batches_group_similar_lengths_and_cover_every_text_once():
    texts = ["a" * n for n in (5, 50, 7, 48, 6, 49)]
    batches = length_batches(texts, 3)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    assert [sorted(len(texts[i]) for i in b) for b in batches] == [[48, 49, 50], [5, 6, 7]]


def test_results_come_back_in_input_order():
    texts = ["bb", "a", "dddd", "ccc", ""]
    assert predict_sorted(texts, 2, lambda batch: [t.upper() for t in batch]) == [t.upper() for t in texts]
