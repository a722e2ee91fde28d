"""imagegate.media"""
