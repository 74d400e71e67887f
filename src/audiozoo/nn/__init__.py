"""audiozoo.nn"""
