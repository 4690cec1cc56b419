"""Training, augmentation and evaluation of the streams.nlu model (not shipped in the wheel).

python -m training.nlu.cli train            # make model
python -m training.nlu.cli eval FILE.jsonl  # make eval
"""
