"""Analytics: the heat map's history, surge alerts and live figures (docs/analytics.md).
`surge.py` is the detector's pure logic (also run by bench/surge.py), `stage.py` the stage."""
