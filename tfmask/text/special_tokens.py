"""The special tokens of tfmask, named once."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """Strings of the special tokens; ids come from the vocabulary.

    The defaults are BERT's. Span corruption needs sentinel tokens; the
    bert-base-uncased vocabulary has no `<extra_id_i>`, but has unused slots
    `[unused0]` ... `[unused993]`, which serve as sentinels (and vocabularies
    trained by tfmask reserve the same names).

    Example:
    >>> SpecialTokens().sentinel(2)
    '[unused2]'
    """

    pad: str = "[PAD]"
    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    mask: str = "[MASK]"
    sentinel_template: str = "[unused{}]"
    num_sentinels: int = 100

    def sentinel(self, index):
        return self.sentinel_template.format(index)

    def sentinels(self):
        return [self.sentinel(i) for i in range(self.num_sentinels)]

    def named(self):
        """[PAD], [UNK], [CLS], [SEP], [MASK] in that order (pad first = id 0)."""
        return [self.pad, self.unk, self.cls, self.sep, self.mask]

    def reserved(self):
        """Every special string a trained vocabulary must contain."""
        return self.named() + self.sentinels()
