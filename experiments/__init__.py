"""The paper's studies, one module each; installed as ``scbjax.experiments``."""
