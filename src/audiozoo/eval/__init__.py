"""audiozoo.eval"""
