"""Training: :mod:`.loop` (the loop), :mod:`.config`, :mod:`.checkpoint`, :mod:`.ema`,
:mod:`.distributed`. Entry point: ``vidrestore train`` or :func:`vidrestore.train.loop.train`."""
