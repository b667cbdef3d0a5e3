package httpapi

import "github.com/gin-gonic/gin"

func (s *server) registerDocs(r *gin.Engine) {}
