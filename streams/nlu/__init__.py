"""Understanding Chinese customer messages: category, intent, sentiment and entities.

from streams.nlu import Understanding
a = Understanding.load().analyze("领先成长赎回三天了还没到账")
"""

from streams.nlu.understand import Analysis, Understanding

__all__ = ["Analysis", "Understanding"]
