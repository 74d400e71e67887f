"""audiozoo.export"""
