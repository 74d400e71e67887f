"""audiozoo.train"""
