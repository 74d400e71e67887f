"""audiozoo.pipelines"""
