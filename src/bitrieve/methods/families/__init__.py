"""Method families: the body several published methods share, as a base class each method file extends.

- ``two_tower.TwoTowerHashing``: DJSRH, JDSH, DGCPN (one MLP hash tower per modality; a method supplies the batch
  similarity target and the objective).
- ``fusion.FusionHashing``: UCMFH, the UCMFH fork's variant, agch_fusion_balanced (a fusion encoder + two hash heads
  trained with a contrastive loss; a method supplies the encoder ``embed`` and its stages); ``pair_input``: its
  pair-input evaluations.
- ``image.ImageHashing``: DSH, GreedyHash and the single-modal image-hashing methods (a backbone + a hash head and
  one SGD stage; a method supplies ``hash_head``, ``loss`` and its schedule).

A family is built from parts/ (networks, standardisation, fill) and losses/; it holds no hyper-parameter default of
its own: the defaults are the papers', in each method's ``Params``.
"""
