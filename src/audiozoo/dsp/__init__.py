"""audiozoo.dsp"""
