"""The reserved token ids and strings of the course's sequence models.

Every model, decoder, vectorizer and sequence task of the course numbers its tokens
this way, so that a model trained on one of them decodes with the others:

| id | name    | string      | meaning                                                 |
|----|---------|-------------|---------------------------------------------------------|
| 0  | `PAD`   | `""`        | padding; masked by the embeddings, ignored by the loss  |
| 1  | `START` | `"[start]"` | the first token a decoder reads (teacher forcing, decoding) |
| 2  | `END`   | `"[end]"`   | the last token a decoder writes; decoding stops there   |
| 3  | `OOV`   | `"[UNK]"`   | any word outside a vocabulary (`course_lib.text`)        |

The synthetic sequence tasks (`course_lib.datasets.make_sequence_task`) have no
unknown words: their symbols start at 3. This module imports nothing, so the data
module and the model modules can both depend on it without depending on each other.

>>> PAD, START, END, OOV
(0, 1, 2, 3)
>>> RESERVED_TOKENS[END]
'[end]'
"""

PAD = 0
START = 1
END = 2
OOV = 3

PAD_TOKEN = ""
START_TOKEN = "[start]"
END_TOKEN = "[end]"
OOV_TOKEN = "[UNK]"

# The first entries of every vocabulary: `RESERVED_TOKENS[i]` is the string of id `i`.
RESERVED_TOKENS = (PAD_TOKEN, START_TOKEN, END_TOKEN, OOV_TOKEN)
