package httpapi

import "github.com/gin-gonic/gin"

func (s *server) registerTokens(v1 *gin.RouterGroup) {}
