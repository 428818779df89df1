"""Domain lexicons: terms read from files or mined from the training data become whole-word tokens
with embedding rows of their own, trained under every tuning method and saved with the run."""
from domainft.lexicon.inject import Injection, inject, inject_lexicon, tokens_per_word
from domainft.lexicon.rows import ROWS_FILE, fold_new_rows, load_base, save_new_rows, train_new_rows
from domainft.lexicon.terms import Term, mine_terms, read_lexicon

__all__ = ["Injection", "ROWS_FILE", "Term", "fold_new_rows", "inject", "inject_lexicon", "load_base", "mine_terms",
           "read_lexicon", "save_new_rows", "tokens_per_word", "train_new_rows"]
