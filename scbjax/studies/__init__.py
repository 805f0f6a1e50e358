"""Layer 5, the paper's studies: one module each (its runs, figures and claims), found by
``scbjax.app.reproduce`` without a hand-kept list; ``base`` holds the protocol and toolkit,
``plots`` the figures' house style."""
