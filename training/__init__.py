"""Training code and corpora, kept in the checkout and out of the installed package."""
