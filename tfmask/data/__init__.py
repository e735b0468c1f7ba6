"""tf.data pipelines that mask on the fly: sources, tokenization, masking strategies, packing."""
