"""audiozoo.text"""
