"""audiozoo.data"""
